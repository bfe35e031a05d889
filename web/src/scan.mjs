// Scanning a QR code with the camera (an invitation, or the relay's pairing QR): only what a
// browser does. The decoder is the browser's own `BarcodeDetector` where it has one that reads
// QR codes (Chromium on Android, macOS, ChromeOS), else jsQR (npm `jsqr`, Apache-2.0, no
// dependencies) on the camera's frames drawn to a canvas. The scan buttons are shown only where
// the page can reach a camera (`navigator.mediaDevices.getUserMedia`: a secure context).
import jsQR from "jsqr";

export function cameraSupported() {
  return typeof navigator !== "undefined" && Boolean(navigator.mediaDevices?.getUserMedia);
}

/** A frame decoder for `video`: resolves to {name, read(video) -> Promise<string|null>}. */
export async function qrDecoder() {
  if ("BarcodeDetector" in globalThis) {
    const formats = await globalThis.BarcodeDetector.getSupportedFormats().catch(() => []);
    if (formats.includes("qr_code")) {
      const detector = new globalThis.BarcodeDetector({ formats: ["qr_code"] });
      return { name: "BarcodeDetector", read: async (video) => (await detector.detect(video))[0]?.rawValue ?? null };
    }
  }
  const canvas = document.createElement("canvas");
  const context = canvas.getContext("2d", { willReadFrequently: true });
  return {
    name: "jsQR",
    read: async (video) => {
      if (!video.videoWidth) return null;
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      context.drawImage(video, 0, 0);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      return jsQR(image.data, image.width, image.height, { inversionAttempts: "attemptBoth" })?.data ?? null;
    },
  };
}

/**
 * Show the back camera in `video` until a QR code is read, `cancel` resolves, or `timeoutMs`.
 * @returns {Promise<{text: string|null, decoder: string}>} text null: nothing read
 */
export async function scanQr(video, { cancel, timeoutMs = 120_000 }) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  const decoder = await qrDecoder();
  let stopped = false;
  cancel?.then(() => { stopped = true; });
  const deadline = performance.now() + timeoutMs;
  try {
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    while (!stopped && performance.now() < deadline) {
      const text = await decoder.read(video).catch(() => null);
      if (text) return { text, decoder: decoder.name };
      await new Promise((resolve) => requestAnimationFrame(resolve)); // the next frame
    }
    return { text: null, decoder: decoder.name };
  } finally {
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
    video.hidden = true;
  }
}
