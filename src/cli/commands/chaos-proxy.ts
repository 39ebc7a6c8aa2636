import { type Command, InvalidArgumentError, Option } from "commander";
import { type ChaosEvent, type ChaosStats, startChaosProxy } from "../../chaos/chaos-proxy.js";
import { formatSchedule, parseSchedule, type ScheduleStep } from "../../chaos/schedule.js";
import { DEFAULT_RANDOM_BLACKHOLE_MS, type RandomFaults } from "../../chaos/scheduler.js";
import { formatDuration, formatRate } from "../../chaos/units.js";
import { EXIT, fail } from "../common.js";
import { parseBandwidth, parseDuration, parseHostPort, parseSeed } from "../parse.js";

interface ChaosFlags {
  target: { host: string; port: number };
  listen: { host: string; port: number };
  latency?: number;
  jitter?: number;
  bandwidth?: number;
  cutEvery?: number;
  resetEvery?: number;
  blackholeEvery?: number;
  blackholeFor?: number;
  randomTarget: "one" | "all";
  schedule?: string;
  seed?: number;
  json: boolean;
}

/** A duration flag: a unit is required, negatives are refused, and 0 too when `above0`. */
function duration(what: string, above0: boolean) {
  return (text: string): number => {
    if (text.trim().startsWith("-")) throw new InvalidArgumentError(`${what} cannot be negative`);
    const ms = parseDuration(text);
    if (above0 && ms === 0) throw new InvalidArgumentError(`${what} must be above 0`);
    return ms;
  };
}

const hostPort = (a: { host: string; port: number }): string =>
  a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;

function eventLine(e: ChaosEvent): string {
  const at = `+${(e.atMs / 1000).toFixed(3)}s`.padStart(10);
  // "conn 7" is the 7th connection accepted: a fault number would read as a count of faults.
  const who = e.connection === null ? "all" : `conn ${e.connection}`;
  return `${at}  ${e.kind.padEnd(9)}  ${who.padEnd(8)}  ${e.detail}  (${e.source})`;
}

function summaryLine(s: ChaosStats, elapsedMs: number, seed: number): string {
  const f = s.faults;
  return (
    `summary after ${(elapsedMs / 1000).toFixed(1)}s, seed ${seed}: ` +
    `${s.accepted} connections accepted, ${s.open} open; ` +
    `bytes ${s.bytes.toTarget} to the target, ${s.bytes.toClient} to clients, ` +
    `${s.dropped.toTarget + s.dropped.toClient} dropped; ` +
    `faults: ${f.cut} cut, ${f.reset} reset, ${f.blackhole} blackhole, ${f.restore} restore, ` +
    `${f.latency} latency, ${f.bandwidth} bandwidth`
  );
}

function faultsLine(flags: ChaosFlags, random: RandomFaults | undefined, steps: ScheduleStep[]): string {
  const parts: string[] = [];
  if (flags.latency !== undefined || flags.jitter !== undefined)
    parts.push(`latency ${formatDuration(flags.latency ?? 0)} jitter ${formatDuration(flags.jitter ?? 0)}`);
  if (flags.bandwidth !== undefined) parts.push(`bandwidth ${formatRate(flags.bandwidth)}`);
  if (random) {
    const which = random.target === "all" ? "all connections" : "one connection";
    if (random.cutEveryMs) parts.push(`cut every ~${formatDuration(random.cutEveryMs)} (${which})`);
    if (random.resetEveryMs) parts.push(`reset every ~${formatDuration(random.resetEveryMs)} (${which})`);
    if (random.blackholeEveryMs)
      parts.push(
        `blackhole every ~${formatDuration(random.blackholeEveryMs)} for ${formatDuration(random.blackholeForMs ?? DEFAULT_RANDOM_BLACKHOLE_MS)} (${which})`,
      );
  }
  if (steps.length > 0) parts.push(`schedule "${formatSchedule(steps)}"`);
  return parts.length === 0 ? "faults: none (bytes relayed untouched)" : `faults: ${parts.join(", ")}`;
}

export function registerChaosProxy(program: Command): void {
  program
    .command("chaos-proxy")
    .description(
      "relay TCP connections to a target (muster's tcp:// and ws:// alike) and inject faults: latency, jitter, a bandwidth limit, cuts, resets, black-holes",
    )
    .requiredOption("--target <host:port>", "where every connection is relayed, e.g. 127.0.0.1:33076", (v) =>
      parseHostPort(v),
    )
    .addOption(
      new Option("--listen <host:port>", "where to listen; port 0 picks a free port")
        .default({ host: "127.0.0.1", port: 0 }, "127.0.0.1:0")
        .argParser((v) => parseHostPort(v, true)),
    )
    .option("--latency <duration>", "added to each direction, e.g. 50ms", duration("the latency", false))
    .option(
      "--jitter <duration>",
      "up to this much more per chunk, drawn from the seed; order is kept",
      duration("the jitter", false),
    )
    .option("--bandwidth <rate>", "limit per connection and direction, e.g. 64KB/s, 1MB/s", parseBandwidth)
    .option(
      "--cut-every <duration>",
      "random cuts (FIN both ways), this far apart on average",
      duration("--cut-every", true),
    )
    .option(
      "--reset-every <duration>",
      "random resets (RST both ways), this far apart on average",
      duration("--reset-every", true),
    )
    .option(
      "--blackhole-every <duration>",
      "random black-holes (nothing passes, nothing closes), this far apart on average",
      duration("--blackhole-every", true),
    )
    .option(
      "--blackhole-for <duration>",
      `how long each random black-hole lasts (default ${formatDuration(DEFAULT_RANDOM_BLACKHOLE_MS)}; needs --blackhole-every)`,
      duration("--blackhole-for", true),
    )
    .addOption(
      new Option("--random-target <which>", "what a random fault hits: one open connection, or all")
        .choices(["one", "all"])
        .default("one"),
    )
    .option("--schedule <spec>", 'faults at fixed times, e.g. "5s blackhole 3s; 12s cut; 25s latency 200ms"')
    .option(
      "--seed <n>",
      "seed of the random faults and jitter, 0 to 4294967295 (default: a fresh one)",
      parseSeed,
    )
    .option("--json", "JSON lines: the start, one per fault, and the summary", false)
    .addHelpText(
      "after",
      `
Schedule: steps "TIME ACTION" separated by ";", times since the start, in order:
  cut                          close every connection (FIN both ways)
  reset                        reset every connection (RST both ways)
  blackhole [DURATION]         forward nothing, close nothing; for a while or until restore
  restore                      lift every black-hole
  latency DURATION [jitter DURATION]
  jitter DURATION
  bandwidth RATE | bandwidth off

Random faults come at exponentially distributed intervals of the given mean, drawn from the
seed; the same seed and flags make the same decisions. The seed is printed at the start.

Examples:
  muster chaos-proxy --target 127.0.0.1:33076 --listen 127.0.0.1:7000 --latency 50ms --jitter 20ms
  muster chaos-proxy --target 127.0.0.1:33075 --cut-every 10s --blackhole-every 30s --blackhole-for 5s --seed 42
  muster chaos-proxy --target 127.0.0.1:33076 --schedule "5s blackhole 3s; 12s cut; 25s latency 200ms"

Output: the listening address and the seed, then one line per fault; on SIGINT or SIGTERM a
summary of the counters, and exit status 0. Exit status 2 for a usage error, 1 when it cannot listen.`,
    )
    .action(async (flags: ChaosFlags, cmd: Command) => {
      if (flags.blackholeFor !== undefined && flags.blackholeEvery === undefined)
        fail("--blackhole-for needs --blackhole-every", EXIT.USAGE);
      const anyRandom =
        flags.cutEvery !== undefined || flags.resetEvery !== undefined || flags.blackholeEvery !== undefined;
      if (cmd.getOptionValueSource("randomTarget") === "cli" && !anyRandom)
        fail("--random-target needs --cut-every, --reset-every or --blackhole-every", EXIT.USAGE);
      let steps: ScheduleStep[] = [];
      if (flags.schedule !== undefined) {
        try {
          steps = parseSchedule(flags.schedule);
        } catch (err) {
          fail(`--schedule: ${(err as Error).message}`, EXIT.USAGE);
        }
      }
      const random: RandomFaults | undefined = anyRandom
        ? {
            ...(flags.cutEvery !== undefined ? { cutEveryMs: flags.cutEvery } : {}),
            ...(flags.resetEvery !== undefined ? { resetEveryMs: flags.resetEvery } : {}),
            ...(flags.blackholeEvery !== undefined ? { blackholeEveryMs: flags.blackholeEvery } : {}),
            ...(flags.blackholeFor !== undefined ? { blackholeForMs: flags.blackholeFor } : {}),
            target: flags.randomTarget,
          }
        : undefined;

      const out = (line: string): void => {
        process.stdout.write(`${line}\n`);
      };
      let proxy: Awaited<ReturnType<typeof startChaosProxy>>;
      try {
        proxy = await startChaosProxy({
          target: flags.target,
          listen: flags.listen,
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          ...(flags.latency !== undefined ? { latencyMs: flags.latency } : {}),
          ...(flags.jitter !== undefined ? { jitterMs: flags.jitter } : {}),
          ...(flags.bandwidth !== undefined ? { bandwidthBytesPerSec: flags.bandwidth } : {}),
          ...(random ? { random } : {}),
          schedule: steps,
          maxEvents: 0,
          onEvent: (e) => out(flags.json ? JSON.stringify(e) : eventLine(e)),
        });
      } catch (err) {
        fail(`cannot listen on ${hostPort(flags.listen)}: ${(err as Error).message}`);
      }
      if (flags.json) {
        out(
          JSON.stringify({
            listening: hostPort(proxy.address),
            target: hostPort(proxy.target),
            seed: proxy.seed,
            latencyMs: flags.latency ?? 0,
            jitterMs: flags.jitter ?? 0,
            bandwidthBytesPerSec: flags.bandwidth ?? null,
            random: random ?? null,
            schedule: steps.length > 0 ? formatSchedule(steps) : null,
          }),
        );
      } else {
        out(`listening on ${hostPort(proxy.address)}, relaying to ${hostPort(proxy.target)}`);
        out(`seed ${proxy.seed}`);
        out(faultsLine(flags, random, steps));
      }
      let stopping = false;
      const stop = (): void => {
        if (stopping) return;
        stopping = true;
        const stats = proxy.stats;
        const elapsed = proxy.elapsedMs();
        out(
          flags.json
            ? JSON.stringify({ summary: { seed: proxy.seed, elapsedMs: Math.round(elapsed), ...stats } })
            : summaryLine(stats, elapsed, proxy.seed),
        );
        void proxy.close().then(() => process.exit(EXIT.OK));
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
}
