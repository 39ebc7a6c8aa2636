import { type Logger, silentLogger } from "../internal/logger.js";
import { preparersFor } from "./agent-runs.js";
import { coordinateRun, type RunOptions, type RunOutcome } from "./coordinator.js";
import { InstanceHost } from "./instance-host.js";
import { localPort } from "./instance-port.js";

/**
 * A run with no server: this process is the coordinator and the one instance ("local"), as a
 * standalone Finch is. A stage that takes more instances is refused before anything runs.
 */
export async function runLocally(
  o: Omit<RunOptions, "local" | "fleet"> & { logger?: Logger },
): Promise<RunOutcome> {
  const host = new InstanceHost({
    preparers: preparersFor(["sql", "exec"]),
    logger: o.logger ?? silentLogger,
  });
  try {
    return await coordinateRun({ ...o, local: localPort(host) });
  } finally {
    await host.close();
  }
}
