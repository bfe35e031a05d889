// The JavaScript half of the web app's crypto suite: libsodium.js (libsodium-wrappers-sumo)
// functions over Uint8Array. The Python half is web/py/waystation_web/suite.py (JsSuite), which
// registers this object as the module `waystation_sodium` and translates its errors to ours.
//
// Every function is synchronous (the L0 core calls its suite synchronously, so WebCrypto, which is
// async only, cannot back it). A failure throws an Error whose message starts with "integrity:"
// when the input came from a peer and did not verify (a box that does not open, a low-order key),
// so the Python side can tell it from a bug.

/**
 * Build the bridge from a ready libsodium module (`await sodium.ready` first).
 * @param {object} sodium the libsodium-wrappers-sumo module
 * @returns {object} the functions JsSuite calls
 */
export function makeSodiumBridge(sodium) {
  const integrity = (what, fn) => {
    try {
      return fn();
    } catch (err) {
      throw new Error(`integrity: ${what}: ${err && err.message ? err.message : err}`);
    }
  };
  return {
    ed25519_keypair(seed) {
      const kp = sodium.crypto_sign_seed_keypair(seed);
      return [kp.publicKey, kp.privateKey];
    },
    ed25519_sign(secretKey, message) {
      return sodium.crypto_sign_detached(message, secretKey);
    },
    ed25519_verify(publicKey, message, signature) {
      try {
        return sodium.crypto_sign_verify_detached(signature, message, publicKey);
      } catch {
        return false;
      }
    },
    ed25519_pk_to_x25519(publicKey) {
      return integrity("not a valid Ed25519 public key", () =>
        sodium.crypto_sign_ed25519_pk_to_curve25519(publicKey));
    },
    ed25519_sk_to_x25519(secretKey) {
      return sodium.crypto_sign_ed25519_sk_to_curve25519(secretKey);
    },
    x25519_public(privateKey) {
      return sodium.crypto_scalarmult_base(privateKey);
    },
    x25519(privateKey, publicKey) {
      return integrity("X25519 with a low-order public key", () =>
        sodium.crypto_scalarmult(privateKey, publicKey));
    },
    secretbox_seal(key, nonce, plaintext) {
      return sodium.crypto_secretbox_easy(plaintext, nonce, key);
    },
    secretbox_open(key, nonce, ciphertext) {
      return integrity("secretbox did not open", () =>
        sodium.crypto_secretbox_open_easy(ciphertext, nonce, key));
    },
    box_seal(theirPublic, mySecret, nonce, plaintext) {
      return sodium.crypto_box_easy(plaintext, nonce, theirPublic, mySecret);
    },
    box_open(theirPublic, mySecret, nonce, ciphertext) {
      return integrity("box did not open", () =>
        sodium.crypto_box_open_easy(ciphertext, nonce, theirPublic, mySecret));
    },
    aead_seal(key, nonce, associated, plaintext) {
      return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        plaintext, associated, null, nonce, key);
    },
    aead_open(key, nonce, associated, ciphertext) {
      return integrity("AEAD tag did not verify", () =>
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
          null, ciphertext, associated, nonce, key));
    },
    random_bytes(n) {
      return sodium.randombytes_buf(n);
    },
  };
}
