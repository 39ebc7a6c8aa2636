import { randomBytes } from "node:crypto";
import { parseStringBool, parseStringInt } from "../values.js";

/** A source of random numbers in [0, 1): Math.random, or a seeded one in tests. */
export type Random = () => number;

/**
 * A data generator: `values()` gives the values of one call (one, or two for int-range, whose
 * second goes to `@PREV`). Each scope copy of a data key has its own generator (`copy()`).
 */
export interface Generator {
  readonly name: string;
  values(): unknown[];
  copy(): Generator;
  /** Values as written into SQL text (not prepared): quoted or not. */
  readonly quote: boolean;
  /** Column generators: the value saved from a result set or an insert id. */
  save?(v: unknown): void;
}

/** A generator's params, checked: unknown params are refused with the list of known ones. */
class Params {
  constructor(
    readonly generator: string,
    readonly p: Record<string, string>,
    known: string[],
  ) {
    for (const k of Object.keys(p))
      if (!known.includes(k))
        throw new Error(
          `generator ${generator}: param "${k}" is not supported (${known.join(", ") || "none"})`,
        );
  }
  int(k: string, dflt: number, min = Number.MIN_SAFE_INTEGER): number {
    if (this.p[k] === undefined || this.p[k] === "") return dflt;
    const n = /^-\d+$/.test(this.p[k]!) ? Number(this.p[k]) : parseStringInt(this.p[k]);
    if (n === undefined || n < min)
      throw new Error(
        `generator ${this.generator}: ${k}: ${JSON.stringify(this.p[k])} is not a whole number${min > Number.MIN_SAFE_INTEGER ? ` ≥ ${min}` : ""}`,
      );
    return n;
  }
}

class IntGen implements Generator {
  readonly name = "int";
  readonly quote = false;
  constructor(
    readonly min: number,
    readonly max: number,
    readonly normal: { mean: number; stddev: number } | undefined,
    readonly rnd: Random,
  ) {}
  values(): unknown[] {
    if (this.normal === undefined) return [this.min + Math.floor(this.rnd() * (this.max - this.min + 1))];
    // Box–Muller, clamped to [min, max].
    const u = 1 - this.rnd();
    const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.rnd());
    const v = Math.round(this.normal.mean + z * this.normal.stddev);
    return [Math.min(this.max, Math.max(this.min, v))];
  }
  copy(): Generator {
    return new IntGen(this.min, this.max, this.normal, this.rnd);
  }
}

class IntGaps implements Generator {
  readonly name = "int-gaps";
  readonly quote = false;
  readonly #count: number;
  readonly #size: number;
  constructor(
    readonly min: number,
    readonly max: number,
    readonly p: number,
    readonly rnd: Random,
  ) {
    this.#size = max - min + 1;
    this.#count = Math.max(1, Math.floor((this.#size * p) / 100));
  }
  values(): unknown[] {
    // p % of the integers of [min, max], evenly spaced: the gaps between them are never read.
    const k = Math.floor(this.rnd() * this.#count);
    return [this.min + Math.floor((k * this.#size) / this.#count)];
  }
  copy(): Generator {
    return new IntGaps(this.min, this.max, this.p, this.rnd);
  }
}

class IntRange implements Generator {
  readonly name = "int-range";
  readonly quote = false;
  constructor(
    readonly min: number,
    readonly max: number,
    readonly size: number,
    readonly rnd: Random,
  ) {}
  values(): unknown[] {
    const hi = Math.max(this.min, this.max - this.size + 1);
    const n = this.min + Math.floor(this.rnd() * (hi - this.min + 1));
    return [n, n + this.size - 1];
  }
  copy(): Generator {
    return new IntRange(this.min, this.max, this.size, this.rnd);
  }
}

class AutoInc implements Generator {
  readonly name = "auto-inc";
  readonly quote = false;
  #n: number;
  constructor(
    readonly start: number,
    readonly step: number,
  ) {
    this.#n = start;
  }
  values(): unknown[] {
    this.#n += this.step;
    return [this.#n];
  }
  copy(): Generator {
    return new AutoInc(this.start, this.step);
  }
}

const AZ = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

class StrFillAz implements Generator {
  readonly name = "str-fill-az";
  readonly quote = true;
  constructor(
    readonly len: number,
    readonly rnd: Random,
  ) {}
  values(): unknown[] {
    let s = "";
    for (let i = 0; i < this.len; i++) s += AZ[Math.floor(this.rnd() * 52)];
    return [s];
  }
  copy(): Generator {
    return new StrFillAz(this.len, this.rnd);
  }
}

const B32 = "0123456789abcdefghijklmnopqrstuv";

/** Globally unique 20-character ids in rs/xid's form: time, machine, process, counter. */
class Xid implements Generator {
  readonly name = "xid";
  readonly quote = true;
  static #machine = randomBytes(3);
  static #counter = randomBytes(3).readUIntBE(0, 3);
  values(): unknown[] {
    const b = Buffer.alloc(12);
    b.writeUInt32BE(Math.floor(Date.now() / 1000), 0);
    Xid.#machine.copy(b, 4);
    b.writeUInt16BE(process.pid & 0xffff, 7);
    Xid.#counter = (Xid.#counter + 1) & 0xffffff;
    b.writeUIntBE(Xid.#counter, 9, 3);
    let bits = 0;
    let acc = 0;
    let out = "";
    for (const byte of b) {
      acc = (acc << 8) | byte;
      bits += 8;
      while (bits >= 5) {
        out += B32[(acc >> (bits - 5)) & 31];
        bits -= 5;
      }
    }
    if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
    return [out];
  }
  copy(): Generator {
    return new Xid();
  }
}

class Column implements Generator {
  readonly name = "column";
  #v: unknown = null;
  constructor(readonly quote: boolean) {}
  values(): unknown[] {
    return [this.#v];
  }
  save(v: unknown): void {
    this.#v = v;
  }
  copy(): Generator {
    return new Column(this.quote);
  }
}

/** The generators Finch's example benchmarks use. */
export const GENERATORS = [
  "int",
  "int-gaps",
  "int-range",
  "auto-inc",
  "str-fill-az",
  "xid",
  "column",
] as const;

/** Makes the generator `name` with its params; throws an Error saying what is wrong. */
export function makeGenerator(
  name: string,
  params: Record<string, string>,
  rnd: Random = Math.random,
): Generator {
  switch (name) {
    case "int": {
      const p = new Params(name, params, ["min", "max", "dist", "mean", "stddev"]);
      const min = p.int("min", 1);
      const max = p.int("max", 100_000);
      if (max < min) throw new Error(`generator int: max ${max} is below min ${min}`);
      const dist = (params.dist ?? "uniform").toLowerCase();
      if (dist !== "uniform" && dist !== "normal")
        throw new Error(`generator int: dist must be uniform or normal, not ${JSON.stringify(params.dist)}`);
      const normal =
        dist === "normal"
          ? {
              mean: p.int("mean", min + Math.floor((max - min + 1) / 2)),
              stddev: Number(params.stddev ?? (max - min) / 8),
            }
          : undefined;
      if (normal !== undefined && !(normal.stddev >= 0))
        throw new Error("generator int: stddev must be a number ≥ 0");
      return new IntGen(min, max, normal, rnd);
    }
    case "int-gaps": {
      const p = new Params(name, params, ["min", "max", "p"]);
      const min = p.int("min", 1);
      const max = p.int("max", 100_000);
      const pct = p.int("p", 20, 1);
      if (max <= min || pct > 100)
        throw new Error("generator int-gaps: min < max, and p a percentage from 1 to 100");
      return new IntGaps(min, max, pct, rnd);
    }
    case "int-range": {
      // `range` is what Finch's own sysbench example writes (Finch ignores it; its size is 100 too).
      const p = new Params(name, params, ["min", "max", "size", "range"]);
      const size = p.int("size", p.int("range", 100, 1), 1);
      const min = p.int("min", 1);
      const max = p.int("max", 100_000);
      if (max < min) throw new Error(`generator int-range: max ${max} is below min ${min}`);
      return new IntRange(min, max, size, rnd);
    }
    case "auto-inc": {
      const p = new Params(name, params, ["start", "step"]);
      return new AutoInc(p.int("start", 0, 0), p.int("step", 1, 1));
    }
    case "str-fill-az": {
      const p = new Params(name, params, ["len"]);
      const len = p.int("len", 100, 1);
      if (len > 1024 * 1024) throw new Error("generator str-fill-az: len is at most 1Mi characters");
      return new StrFillAz(len, rnd);
    }
    case "xid":
      new Params(name, params, []);
      return new Xid();
    case "column": {
      new Params(name, params, ["quote-value"]);
      return new Column(params["quote-value"] === undefined ? true : parseStringBool(params["quote-value"]));
    }
    default:
      throw new Error(`generator "${name}" is not supported (${GENERATORS.join(", ")})`);
  }
}
