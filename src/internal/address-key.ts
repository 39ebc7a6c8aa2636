import { isIP } from "node:net";
import { ErrorCode } from "../errors/codes.js";
import { MusterError } from "../errors/muster-error.js";
import { DEFAULTS } from "./defaults.js";

/** How addresses are grouped for per-address limits. */
export interface AddressKeyOptions {
  /**
   * IPv6 addresses count per network of this many leading bits: a client usually holds a
   * whole /64 and can pick any source address in it, so counting addresses one by one would
   * let it bypass every per-address limit. 128 counts each address. IPv4 addresses (IPv4-mapped
   * IPv6 ones included) always count one by one.
   * @default DEFAULTS.ipv6PrefixBits (64)
   */
  ipv6PrefixBits?: number;
}

/** Checks an `ipv6PrefixBits` option: a whole number from 1 to 128 (INVALID_ARGUMENT otherwise). */
export function checkIpv6PrefixBits(value: number | undefined, name = "ipv6PrefixBits"): number {
  if (value === undefined) return DEFAULTS.ipv6PrefixBits;
  if (!Number.isInteger(value) || value < 1 || value > 128) {
    throw new MusterError(
      ErrorCode.INVALID_ARGUMENT,
      `${name} must be a whole number of bits from 1 to 128, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * The IP of an address as transports and sockets report it: `host:port`, `[v6]:port`, or a
 * bare IP (`::1`, `10.0.0.1`). Anything else (an in-process transport's name) is returned as is.
 */
export function hostOf(address: string): string {
  if (address.startsWith("[")) {
    const end = address.indexOf("]");
    return end > 0 ? address.slice(1, end) : address;
  }
  if (isIP(address) !== 0) return address;
  const colon = address.lastIndexOf(":");
  return colon > 0 ? address.slice(0, colon) : address;
}

/**
 * The key every per-address limit counts under (connections per address, failed
 * authentications per address): the IPv4 address for IPv4 and IPv4-mapped IPv6
 * (`::ffff:10.0.0.1` is `10.0.0.1`), the network `2001:db8:1:2::/64` for IPv6 (prefix from
 * `options.ipv6PrefixBits`; `/128` keys are the bare address), and the text itself for anything
 * that is not an IP address. Accepts every form `hostOf` does; a zone (`fe80::1%eth0`) is
 * dropped.
 */
export function addressKey(address: string, options: AddressKeyOptions = {}): string {
  const host = hostOf(address);
  const bare = host.includes("%") ? host.slice(0, host.indexOf("%")) : host;
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family !== 6) return host;
  const words = ipv6Words(bare);
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0) {
    // ::ffff:a.b.c.d is an IPv4 client on a dual-stack socket.
    if (words[5] === 0xffff)
      return `${words[6]! >> 8}.${words[6]! & 255}.${words[7]! >> 8}.${words[7]! & 255}`;
  }
  const bits = options.ipv6PrefixBits ?? DEFAULTS.ipv6PrefixBits;
  if (bits >= 128) return formatIpv6(words);
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, bits - i * 16));
    words[i] = keep === 0 ? 0 : words[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${formatIpv6(words)}/${bits}`;
}

/** The eight 16-bit words of a valid IPv6 address (an embedded IPv4 tail included). */
function ipv6Words(ip: string): number[] {
  let text = ip.toLowerCase();
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    // a.b.c.d at the end is two words
    const [a, b, c, d] = text
      .slice(lastColon + 1)
      .split(".")
      .map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const gap = text.indexOf("::");
  const parse = (s: string): number[] => (s === "" ? [] : s.split(":").map((w) => Number.parseInt(w, 16)));
  if (gap < 0) return parse(text);
  const left = parse(text.slice(0, gap));
  const right = parse(text.slice(gap + 2));
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** RFC 5952 text: lower case, the longest run of two or more zero words as `::`. */
function formatIpv6(words: readonly number[]): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestAt < 0) return hex.join(":");
  return `${hex.slice(0, bestAt).join(":")}::${hex.slice(bestAt + bestLen).join(":")}`;
}
