// Stands in for undici's HTTP/2 client (lib/dispatcher/client-h2.js) in the CLI bundle. phasekit never enables
// HTTP/2 (undici's `allowH2` stays off), and the real module loads node:http2 and node:tls at start-up, which cost
// every `phasekit once` several milliseconds. Reached only if a server negotiated h2 over ALPN, which undici does
// not offer without allowH2.
'use strict';
module.exports = function connectH2() {
  throw new Error('HTTP/2 is not part of the phasekit CLI bundle');
};
