"""The Python half of the Waystation web app: what runs inside Pyodide beside the `node` package.

- `suite`: the crypto suite backed by libsodium.js through the JavaScript bridge.
- `jslink`: a `node.link.Link` over a JavaScript byte stream (Node's `net` in tests).
- `webble`: dialing a relay over Web Bluetooth (node.radio.link.BleLink on a browser GATT link).
- `member`: the member facade the page (and the Node interop test) calls.
- `backup`: the account export file. `spake2_deps`: what spake2 needs of `cryptography`.
"""
