// A camera picture for Chromium's fake camera (--use-file-for-fake-video-capture): one Y4M frame
// (4:2:0, grey) showing `text` as a QR code, black on white, centred, as a phone would see a
// printed or displayed code. qrcode-generator is the app's own QR encoder.
import qrcode from "qrcode-generator";
import { writeFileSync } from "node:fs";

export function writeQrY4m(path, text, { width = 640, height = 480 } = {}) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const modules = qr.getModuleCount();
  const scale = Math.floor((Math.min(width, height) - 40) / (modules + 8)); // 4-module quiet zone
  const left = Math.floor((width - modules * scale) / 2);
  const top = Math.floor((height - modules * scale) / 2);
  const luma = Buffer.alloc(width * height, 235); // white
  for (let r = 0; r < modules; r++) {
    for (let c = 0; c < modules; c++) {
      if (!qr.isDark(r, c)) continue;
      for (let y = 0; y < scale; y++) luma.fill(16, (top + r * scale + y) * width + left + c * scale, (top + r * scale + y) * width + left + (c + 1) * scale);
    }
  }
  const chroma = Buffer.alloc((width / 2) * (height / 2) * 2, 128); // no colour
  const header = Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\nFRAME\n`);
  writeFileSync(path, Buffer.concat([header, luma, chroma]));
  return { modules, scale };
}
