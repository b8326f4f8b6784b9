// Preload (node -r bench/no-native.cjs) that makes `sodium-native` unloadable, so @phasekit/sdk falls back to its
// libsodium-wrappers (WebAssembly) backend. Used only to measure that backend.
const Module = require('node:module');
const original = Module._load;
Module._load = function load(request, ...rest) {
  // The package, and its addon, which @phasekit/sdk loads directly (via sodium-native/package.json).
  if (
    request === 'sodium-native' ||
    request.startsWith('sodium-native/') ||
    /sodium-native\.node$/.test(request)
  )
    throw Object.assign(new Error('sodium-native disabled by the bench'), { code: 'MODULE_NOT_FOUND' });
  return original.call(this, request, ...rest);
};
