// Where the account lives in the page: Pyodide's file system with an IndexedDB-backed folder
// (Emscripten's IDBFS) mounted at PERSIST_ROOT. Python writes SQLite files there as usual (in
// memory); `save()` copies what changed to IndexedDB, and `load()` brings it back at start.
// The page calls save() after every change it makes (account, group, message, sync).

export const PERSIST_ROOT = "/persist";
export const ACCOUNT_DIR = `${PERSIST_ROOT}/account`;

function syncfs(pyodide, populate) {
  return new Promise((resolve, reject) => {
    pyodide.FS.syncfs(populate, (err) => (err ? reject(new Error(`IndexedDB: ${err}`)) : resolve()));
  });
}

/**
 * Mount the IndexedDB folder and read it in; ask the browser to keep it (no eviction).
 * @returns {Promise<{save: () => Promise<void>, persisted: boolean}>}
 */
export async function openStorage(pyodide) {
  pyodide.FS.mkdirTree(PERSIST_ROOT);
  pyodide.FS.mount(pyodide.FS.filesystems.IDBFS, {}, PERSIST_ROOT);
  await syncfs(pyodide, true);
  let persisted = false;
  try {
    persisted = Boolean(await navigator.storage?.persist?.());
  } catch {
    persisted = false;
  }
  let chain = Promise.resolve();
  // one syncfs at a time (IDBFS does not allow two at once), in the order they were asked for
  const save = () => (chain = chain.then(() => syncfs(pyodide, false)));
  return { save, persisted };
}
