// Stands in for undici's Agent (lib/dispatcher/agent.js) in the CLI bundle. Every command passes the SDK's
// NodeHttpDispatcher (node:http) to its clients, and the SDK makes its default Agent only for a client without a
// dispatcher, on its first request: undici's client and its WebAssembly HTTP parser stay out of the bundle.
'use strict';
module.exports = class AgentLeftOut {
  constructor() {
    throw new Error("undici's Agent is not part of the phasekit CLI bundle: pass a dispatcher");
  }
};
