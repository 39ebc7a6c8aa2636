/** What `$…` in a stage file may name. */
export interface ParamScope {
  params: Record<string, string>;
  cpuCores: number;
  env: Record<string, string | undefined>;
}

const REF = /\$\{([A-Za-z_][\w.-]*)\}|\$([A-Za-z_][\w.-]*)/g;

/**
 * Expands `$params.x` / `${params.x}`, `$sys.CPU_CORES` and environment variables (`$HOME`) in
 * one value, as Finch does; params may refer to other params (at most 8 deep). Throws an Error
 * naming the reference that cannot be expanded.
 */
export function expand(value: string, scope: ParamScope, depth = 0): string {
  if (!value.includes("$")) return value;
  if (depth > 8) throw new Error(`params refer to each other more than 8 deep in ${JSON.stringify(value)}`);
  return value.replace(REF, (_m, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    if (name.startsWith("params.")) {
      const key = name.slice("params.".length);
      const v = Object.hasOwn(scope.params, key) ? scope.params[key] : undefined;
      if (v === undefined)
        throw new Error(`$params.${key} is not defined in params (stage file, _all.yaml or -p)`);
      return expand(v, scope, depth + 1);
    }
    if (name === "sys.CPU_CORES") return String(scope.cpuCores);
    if (name.startsWith("sys.")) throw new Error(`$${name} is not a built-in param (only $sys.CPU_CORES is)`);
    const env = scope.env[name];
    if (env === undefined)
      throw new Error(
        `$${name} is neither a param ($params.x), $sys.CPU_CORES, nor a set environment variable`,
      );
    return env;
  });
}
