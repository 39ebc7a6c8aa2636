import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isMusterError } from "../../test/support/errors.js";
import { ErrorCode } from "../errors/codes.js";
import {
  checkAddress,
  checkInteger,
  checkParamValue,
  checkTimespec,
  formatAddress,
  formatTimespec,
  parseAddress,
  parseInteger,
  parseTimespec,
  timespecFromMs,
  timespecToMs,
} from "./param-types.js";

const invalid = (message: string) => isMusterError(ErrorCode.INVALID_ARGUMENT, message);

describe("integer", () => {
  it("accepts digits with an optional sign, within 64 bits", () => {
    for (const text of [
      "0",
      "-0",
      "+5",
      "1234",
      "9223372036854775807",
      "-9223372036854775808",
      "+0009223372036854775807",
      `${"0".repeat(100)}1`,
    ])
      assert.equal(checkInteger(text), undefined, text);
    assert.equal(parseInteger("-9223372036854775808"), -9223372036854775808n);
    assert.equal(parseInteger("+17"), 17n);
  });

  it("refuses anything else", () => {
    for (const text of ["", "+", "-", "1.0", " 1", "1 ", "0x10", "1e3", "１", "--1", "9".repeat(1000)])
      assert.notEqual(checkInteger(text), undefined, text);
    assert.equal(checkInteger("12x"), 'must be an integer (digits with an optional sign), got "12x"');
    assert.equal(
      checkInteger("9223372036854775808"),
      'must be an integer within 64 bits (−2⁶³…2⁶³−1), got "9223372036854775808"',
    );
    assert.equal(
      checkInteger("-9223372036854775809"),
      'must be an integer within 64 bits (−2⁶³…2⁶³−1), got "-9223372036854775809"',
    );
    assert.throws(
      () => parseInteger("abc"),
      invalid('integer value must be an integer (digits with an optional sign), got "abc"'),
    );
  });
});

describe("timespec", () => {
  it("accepts what upstream's timespec_ex reads", () => {
    for (const text of [
      "1725000000.123456789",
      "1",
      "1.",
      "1.5s",
      " 2.5 ",
      "\t3\n",
      "+3",
      "-1.5",
      "0.1234567891234",
      "9223372036854775807.999999999",
    ])
      assert.equal(checkTimespec(text), undefined, text);
  });

  it("refuses anything else", () => {
    for (const text of ["", ".5", "abc", "1.5ms", "1..2", "1 s", "- 1", "1,5", "s", "9223372036854775808"])
      assert.notEqual(checkTimespec(text), undefined, text);
    assert.equal(checkTimespec("abc"), 'must be a timespec (<seconds>[.<nanoseconds>]), got "abc"');
    assert.equal(
      checkTimespec("9223372036854775808.5"),
      'must be a timespec with at most 2⁶³−1 seconds, got "9223372036854775808.5"',
    );
  });

  it("reads seconds and nanoseconds, the sign applying to the whole value", () => {
    const CASES: [string, { sec: number; nsec: number }][] = [
      ["1725000000.123456789", { sec: 1725000000, nsec: 123456789 }],
      ["1.5", { sec: 1, nsec: 500_000_000 }],
      ["1.5s", { sec: 1, nsec: 500_000_000 }],
      ["7", { sec: 7, nsec: 0 }],
      ["1.1234567899", { sec: 1, nsec: 123456789 }],
      ["-2", { sec: -2, nsec: 0 }],
      ["-1.5", { sec: -2, nsec: 500_000_000 }],
      ["-0.000000001", { sec: -1, nsec: 999_999_999 }],
      ["-0.0", { sec: 0, nsec: 0 }],
    ];
    for (const [text, t] of CASES) assert.deepEqual(parseTimespec(text), t, text);
    assert.throws(
      () => parseTimespec("9007199254740992"),
      invalid('timespec "9007199254740992" has more than 2⁵³−1 seconds'),
    );
    assert.throws(
      () => parseTimespec("x"),
      invalid('timespec value must be a timespec (<seconds>[.<nanoseconds>]), got "x"'),
    );
  });

  it("writes <seconds>.<9 digits>", () => {
    assert.equal(formatTimespec({ sec: 1725000000, nsec: 123456789 }), "1725000000.123456789");
    assert.equal(formatTimespec({ sec: 1725000000, nsec: 0 }), "1725000000.000000000");
    assert.equal(formatTimespec({ sec: 0, nsec: 5 }), "0.000000005");
    assert.equal(formatTimespec({ sec: -2, nsec: 500_000_000 }), "-1.500000000");
    assert.equal(formatTimespec({ sec: -1, nsec: 0 }), "-1.000000000");
    assert.equal(formatTimespec({ sec: -1, nsec: 999_999_999 }), "-0.000000001");
    assert.throws(
      () => formatTimespec({ sec: 1, nsec: 1e9 }),
      invalid("timespec must have integer seconds and 0 ≤ nsec < 10⁹, got 1.1000000000"),
    );
  });

  it("round trips through text", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER - 1 }),
        fc.integer({ min: 0, max: 999_999_999 }),
        (sec, nsec) => {
          assert.deepEqual(parseTimespec(formatTimespec({ sec, nsec })), { sec, nsec });
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("converts from and to milliseconds", () => {
    assert.deepEqual(timespecFromMs(1725000000123), { sec: 1725000000, nsec: 123_000_000 });
    assert.deepEqual(timespecFromMs(1.5), { sec: 0, nsec: 1_500_000 });
    assert.deepEqual(timespecFromMs(-1), { sec: -1, nsec: 999_000_000 });
    assert.equal(timespecToMs({ sec: 2, nsec: 500_000 }), 2000.5);
    assert.equal(formatTimespec(timespecFromMs(1725000000123)), "1725000000.123000000");
    assert.throws(() => timespecFromMs(Number.NaN), invalid("time in milliseconds must be finite, got NaN"));
  });
});

describe("address", () => {
  it("accepts IPv4, IPv6 and host names, with or without a port", () => {
    const CASES: [string, ReturnType<typeof parseAddress>][] = [
      ["10.0.0.1", { family: "ipv4", host: "10.0.0.1", port: undefined }],
      ["10.0.0.1:4040", { family: "ipv4", host: "10.0.0.1", port: 4040 }],
      ["1.2.3.4:0", { family: "ipv4", host: "1.2.3.4", port: 0 }],
      ["[::1]:4040", { family: "ipv6", host: "::1", port: 4040 }],
      ["[::1]", { family: "ipv6", host: "::1", port: undefined }],
      ["::1", { family: "ipv6", host: "::1", port: undefined }],
      ["2001:db8::8:800:200c:417a", { family: "ipv6", host: "2001:db8::8:800:200c:417a", port: undefined }],
      ["[::ffff:10.0.0.1]:65535", { family: "ipv6", host: "::ffff:10.0.0.1", port: 65535 }],
      ["fe80::1%eth0", { family: "ipv6", host: "fe80::1%eth0", port: undefined }],
      ["localhost:80", { family: "name", host: "localhost", port: 80 }],
      ["a-b.example.com:4041", { family: "name", host: "a-b.example.com", port: 4041 }],
      ["web1", { family: "name", host: "web1", port: undefined }],
    ];
    for (const [text, a] of CASES) {
      assert.deepEqual(parseAddress(text), a, text);
      assert.equal(checkAddress(text), undefined, text);
      assert.equal(formatAddress(a), text.startsWith("[") && a.port === undefined ? a.host : text);
    }
  });

  it("refuses anything else, saying why", () => {
    const CASES: [string, string][] = [
      ["", 'address "": the host is missing'],
      [":80", 'address ":80": the host is missing'],
      ["1.2.3.4:", 'address "1.2.3.4:": port "" is not 0–65535'],
      ["1.2.3.4:65536", 'address "1.2.3.4:65536": port "65536" is not 0–65535'],
      ["1.2.3.4:http", 'address "1.2.3.4:http": port "http" is not 0–65535'],
      ["[::1", "address \"[::1\": '[' has no closing ']'"],
      ["[::1]x", "address \"[::1]x\": \"x\" follows ']' where ':port' or nothing was expected"],
      ["[::1]:", 'address "[::1]:": port "" is not 0–65535'],
      ["[1.2.3.4]:80", 'address "[1.2.3.4]:80": "1.2.3.4" is not an IPv6 address'],
      ["300.1.1.1", 'address "300.1.1.1": "300.1.1.1" is not a valid IPv4 address'],
      ["10.1:80", 'address "10.1:80": "10.1" is not a valid IPv4 address'],
      ["01.2.3.4", 'address "01.2.3.4": "01.2.3.4" is not a valid IPv4 address'],
      ["-bad.com", 'address "-bad.com": "-bad.com" is neither an IPv4 address nor a host name'],
      ["a_b.com", 'address "a_b.com": "a_b.com" is neither an IPv4 address nor a host name'],
      ["a..b", 'address "a..b": "a..b" is neither an IPv4 address nor a host name'],
      [
        "host:80:90",
        'address "host:80:90": it is not an IPv6 address (an IPv6 with a port goes in [brackets])',
      ],
      [
        "::1:80:zz",
        'address "::1:80:zz": it is not an IPv6 address (an IPv6 with a port goes in [brackets])',
      ],
      [`${"a".repeat(250)}.com`, `address "${"a".repeat(60)}…": the host name is longer than 253 characters`],
    ];
    for (const [text, message] of CASES) {
      assert.throws(() => parseAddress(text), invalid(message), text);
      assert.notEqual(checkAddress(text), undefined, text);
    }
    assert.equal(
      checkAddress("1.2.3.4:99999"),
      'must be an address such as 10.0.0.1:4040 or [::1]:4040, got "1.2.3.4:99999": port "99999" is not 0–65535',
    );
  });
});

describe("checkParamValue", () => {
  it("checks each type; strings take anything", () => {
    assert.equal(checkParamValue("string", ""), undefined);
    assert.equal(checkParamValue("string", "x;\n"), undefined);
    assert.equal(checkParamValue("integer", "12"), undefined);
    assert.notEqual(checkParamValue("integer", "1.5"), undefined);
    assert.equal(checkParamValue("timespec", "1.5"), undefined);
    assert.notEqual(checkParamValue("timespec", "later"), undefined);
    assert.equal(checkParamValue("address", "[::1]:4040"), undefined);
    assert.notEqual(checkParamValue("address", "nowhere:"), undefined);
  });
});
