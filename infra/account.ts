// The partition, region and account the stage deploys to: the context of the IAM policies (infra/policy.ts).
import type { AccountContext } from "./policy.ts";

export const accountContext: $util.Output<AccountContext> = $resolve([
  aws.getPartitionOutput().partition,
  aws.getRegionOutput().region,
  aws.getCallerIdentityOutput().accountId,
]).apply(([partition, region, account]) => ({ partition, region, account }));

/** PascalCase component names per lab (foo → Foo): SST's convention for logical names. */
export const componentName = (lab: string, what: string): string =>
  `${lab.charAt(0).toUpperCase()}${lab.slice(1)}${what}`;

/** kebab-case to PascalCase (instance-state → InstanceState), for logical names. */
export const pascal = (kebab: string): string =>
  kebab.replace(/(^|-)([a-z0-9])/g, (_m, _d, c: string) => c.toUpperCase());
