// MUSTER_BENCH_ROUNDS_PROF=DIR: a benchmark server profiles only the measured rounds of a
// fan-out (not its start-up nor its agents' connections) and writes the V8 CPU profile into
// DIR, named after the system, the number of agents and the payload size.

import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector";
import { join } from "node:path";

/** A profile being taken; `stop` writes it and returns its path. */
export interface RoundsProfile {
  stop(): Promise<string>;
}

function post<T>(session: Session, method: string): Promise<T> {
  return new Promise((resolve, reject) => {
    session.post(method, (err, result) => (err ? reject(err) : resolve(result as T)));
  });
}

/** Starts profiling when MUSTER_BENCH_ROUNDS_PROF is set; undefined otherwise. */
export async function startRoundsProfile(label: string): Promise<RoundsProfile | undefined> {
  const dir = process.env.MUSTER_BENCH_ROUNDS_PROF;
  if (!dir) return undefined;
  const session = new Session();
  session.connect();
  await post(session, "Profiler.enable");
  await post(session, "Profiler.start");
  return {
    async stop() {
      const { profile } = await post<{ profile: unknown }>(session, "Profiler.stop");
      session.disconnect();
      const name = `${label.replace(/[^A-Za-z0-9.-]+/g, "_")}-${process.pid}-${Date.now()}.cpuprofile`;
      const file = join(dir, name);
      await writeFile(file, JSON.stringify(profile));
      return file;
    },
  };
}
