/**
 * `@phasekit/emulator`: a faithful local Phase API with the real end-to-end crypto, for tests, demos and offline
 * development. See README.md for the control API.
 */
export { startEmulator } from './server.js';
export { generateCertificate } from './tls.js';
export type { Emulator, StartEmulatorOptions } from './server.js';
export { connectEmulator } from './control.js';
export type { EmulatorClient } from './control.js';
export { loadSeed, validateSeed, DEMO_SEED } from './seed.js';
export type { EmulatorState } from './state.js';
export type { GenerateCertificateOptions, TlsCredentials } from './tls.js';
export { VERSION } from './version.js';
export type {
  DeleteSecretInput,
  EmulatorApp,
  EmulatorInfo,
  EmulatorLogger,
  EmulatorTokens,
  EnvType,
  FaultHandle,
  FaultSpec,
  PlainSecret,
  RequestLogEntry,
  RequestRecord,
  RouteName,
  SecretType,
  Seed,
  SeedApp,
  SeedEnvironment,
  SeedSecret,
  SetOverrideInput,
  SetSecretInput,
  SetSecretResult,
  TokenKind,
} from './types.js';
