// Rendered runner files: pure functions from typed inputs to the exact text that lands on a runner or a
// worker. functions/render/README.md describes each file for operators.
export { CREDENTIAL_FUNCTIONS, tlsCredentialText } from "./credential.ts";
export { REMOVE_ACTION, renderDispatcher } from "./dispatcher.ts";
export {
  type GatewayInput,
  type GatewayState,
  gatewayRules,
  renderGatewayRules,
} from "./gateway.ts";
export {
  checkFunctions,
  renderHealthScript,
  renderHealthService,
  renderHealthTimer,
  renderWatchScript,
  renderWatchService,
} from "./health.ts";
export {
  CREDENTIAL_KINDS,
  type CredentialKind,
  renderTlsKeyfile,
  renderVpnKeyfile,
  STATIC_KEY_DIRECTION,
  type TunnelAddresses,
  vpnConnectionUuid,
  vpnKeyfileTemplate,
} from "./keyfile.ts";
export {
  FAMILIES,
  type Family,
  PACKAGES,
  type PreflightHost,
  preflightFunctions,
  REQUIRED_COMMANDS,
  RUNNER_HOST,
  renderPreflight,
} from "./preflight.ts";
export { COMMAND_LOCK_WAIT_SECONDS, commandLock, messageFunctions, PUT_FILE_FUNCTION } from "./prelude.ts";
export {
  NETWORK_MANAGER_DNS_CONF,
  renderRunnerResolvedDropIn,
  renderServiceResolvedDropIn,
  renderWorkerResolvedDropIn,
} from "./resolved.ts";
export {
  contentHash,
  type Rendered,
  type RunnerSetupInput,
  renderRunnerSetup,
  tunnelOf,
} from "./setup.ts";
export { RenderError, shQuote } from "./shell.ts";
export { renderStopVpn } from "./stop.ts";
export { renderWorkerScript } from "./worker.ts";
