"""The Python half of the Waystation web app: what runs inside Pyodide beside the `node` package.

- `suite`: the crypto suite backed by libsodium.js through the JavaScript bridge.
- `jslink`: a `node.link.Link` over a JavaScript byte stream (Node's `net` in tests, later BLE).
- `member`: the member facade the page (and the Node interop test) calls.
"""
