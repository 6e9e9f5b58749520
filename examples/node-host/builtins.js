// The builtins precheck.wasm imports that @open-policy-agent/opa-wasm does not implement itself (its 1.x
// SDK ships only json.*, strings/sprintf, regex.* and yaml.*): the two dws.* version builtins and OPA's
// time.now_ns and time.parse_rfc3339_ns. Pass builtins() as loadPolicy's customBuiltins.
//
// The SDK's convention for a custom builtin: its arguments arrive JSON-decoded, its result is
// JSON-encoded back into the module, and returning undefined gives the module "no result", so the Rego
// expression is undefined. A thrown error aborts the whole evaluation, so nothing here throws for bad
// input. An ArrayBuffer result is taken as JSON text as it is, which is how the nanosecond numbers
// (beyond 2^53) get into the module without rounding.
"use strict";

const { versionCompare, versionValid } = require("./versions");

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function jsonNumber(n) {
  return new TextEncoder().encode(n.toString()).buffer;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil), exact for any
// year, unlike Date.UTC, which maps the years 0-99 to 1900-1999.
function daysFromCivil(y, m, d) {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function daysIn(month, year) {
  if (month === 2) return (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)) ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

// What Go's time.Parse(time.RFC3339, s) accepts, as OPA's time.parse_rfc3339_ns uses it: a four-digit
// year; a one- or two-digit hour (Go's layout parser allows one); an optional fraction after "." or ",",
// truncated to nanoseconds; "Z" or a numeric offset whose two-digit hours and minutes Go does not range-check.
const RFC3339 = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})(?:[.,]([0-9]+))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))$/;

// parseRFC3339Nanos is time.parse_rfc3339_ns: nanoseconds since the epoch as a BigInt, or undefined for a
// string Go would not parse or a time outside int64 nanoseconds (topdown's error, which is undefined).
function parseRFC3339Nanos(s) {
  if (typeof s !== "string") return undefined;
  const m = RFC3339.exec(s);
  if (m === null) return undefined;
  const [year, month, day, hour, min, sec] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(month, year)) return undefined;
  if (hour > 23 || min > 59 || sec > 59) return undefined;
  let secs = BigInt(daysFromCivil(year, month, day)) * 86400n + BigInt(hour * 3600 + min * 60 + sec);
  if (m[8] !== undefined) {
    const offset = BigInt((Number(m[9]) * 60 + Number(m[10])) * 60);
    secs -= m[8] === "-" ? -offset : offset;
  }
  const frac = BigInt(((m[7] || "") + "000000000").slice(0, 9));
  const ns = secs * 1000000000n + frac;
  return ns < INT64_MIN || ns > INT64_MAX ? undefined : ns;
}

// builtins returns the custom builtins for loadPolicy. nowNanos is the evaluation's time as a BigInt of
// nanoseconds; like OPA, call it once per evaluation (see host.js) so that every time.now_ns in one
// evaluation is the same instant.
function builtins(nowNanos = () => BigInt(Date.now()) * 1000000n) {
  return {
    "dws.version_compare": versionCompare,
    "dws.version_valid": versionValid,
    "time.now_ns": () => jsonNumber(nowNanos()),
    "time.parse_rfc3339_ns": (s) => {
      const ns = parseRFC3339Nanos(s);
      return ns === undefined ? undefined : jsonNumber(ns);
    },
  };
}

module.exports = { builtins, parseRFC3339Nanos, versionCompare, versionValid };
