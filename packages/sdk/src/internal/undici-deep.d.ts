// Types for the undici modules imported by path (undici publishes types for its index only).
declare module 'undici/lib/dispatcher/agent.js' {
  import type { Agent } from 'undici';
  const AgentClass: typeof Agent;
  export default AgentClass;
}

declare module 'undici/lib/dispatcher/dispatcher.js' {
  import type { Dispatcher } from 'undici';
  const DispatcherClass: typeof Dispatcher;
  export default DispatcherClass;
}

declare module 'undici/lib/handler/wrap-handler.js' {
  import type { Dispatcher } from 'undici';
  /** Adapts a handler of undici's older callback API (onConnect, onHeaders, ...) to the controller API. */
  const WrapHandler: { wrap(handler: Dispatcher.DispatchHandler): Dispatcher.DispatchHandler };
  export default WrapHandler;
}
