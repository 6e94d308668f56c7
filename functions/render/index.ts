// Rendered runner files: pure functions from typed inputs to the exact text that lands on a runner or a
// worker. functions/render/README.md describes each file for operators.
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
} from "./health.ts";
export {
  renderVpnKeyfile,
  STATIC_KEY_DIRECTION,
  type TunnelAddresses,
  vpnConnectionUuid,
  vpnKeyfileTemplate,
} from "./keyfile.ts";
export {
  NETWORK_MANAGER_DNS_CONF,
  renderRunnerResolvedDropIn,
  renderWorkerResolvedDropIn,
} from "./resolved.ts";
export { contentHash, type Rendered, type RunnerSetupInput, renderRunnerSetup } from "./setup.ts";
export { RenderError, shQuote } from "./shell.ts";
export { renderStopVpn } from "./stop.ts";
export { renderWorkerScript } from "./worker.ts";
