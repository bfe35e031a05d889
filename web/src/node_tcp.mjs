// Node only: a TCP byte stream for web/py/waystation_web/jslink.py (StreamLink), from `net`.
// In the page the same stream interface will be backed by Web Bluetooth (phase 2).
import net from "node:net";

const MAX_BUFFERED = 256 * 1024; // bytes read but not yet taken by Python: pause the socket above

/**
 * Open a TCP connection and wrap it as a stream: read() -> Promise<Uint8Array|undefined>,
 * write(bytes) -> Promise (resolves when the socket has room), close() -> Promise, label.
 * @param {string} host
 * @param {number} port
 * @param {number} timeoutMs connect deadline
 */
export function openTcpStream(host, port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(wrap(socket, `tcp:${host}:${port}`));
    });
  });
}

function wrap(socket, label) {
  const chunks = [];
  let buffered = 0;
  let ended = false;
  let failure = null;
  let waiter = null;
  const wake = () => {
    if (waiter) {
      const w = waiter;
      waiter = null;
      w();
    }
  };
  socket.removeAllListeners("error");
  socket.on("data", (chunk) => {
    chunks.push(chunk);
    buffered += chunk.length;
    if (buffered > MAX_BUFFERED) socket.pause();
    wake();
  });
  socket.on("end", () => { ended = true; wake(); });
  socket.on("close", () => { ended = true; wake(); });
  socket.on("error", (err) => { failure = err; wake(); });
  return {
    label,
    async read() {
      while (chunks.length === 0) {
        if (failure) throw failure;
        if (ended) return undefined; // None in Python
        await new Promise((r) => { waiter = r; });
      }
      const chunk = chunks.shift();
      buffered -= chunk.length;
      if (buffered <= MAX_BUFFERED) socket.resume();
      return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    },
    write(bytes) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const copy = Buffer.from(bytes);
        if (socket.write(copy)) resolve();
        else {
          const onDrain = () => { socket.off("error", onError); resolve(); };
          const onError = (err) => { socket.off("drain", onDrain); reject(err); };
          socket.once("drain", onDrain);
          socket.once("error", onError);
        }
      });
    },
    close() {
      return new Promise((resolve) => {
        if (socket.destroyed) return resolve();
        socket.end(() => resolve());
        setTimeout(() => { socket.destroy(); resolve(); }, 2000).unref();
      });
    },
  };
}
