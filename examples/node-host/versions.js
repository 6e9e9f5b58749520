// dws.version_compare and dws.version_valid for JavaScript hosts: a port of hashicorp/go-version v1.9.0
// (version.go: NewVersion and Compare), the library precheck's Go engines use. The shared table
// ../../policy/testdata/versions.json holds the two together; see versions.test.js.
"use strict";

// go-version's VersionRegexpRaw, anchored. JavaScript's backtracking matcher picks the same submatches as
// Go's leftmost-first one, so the groups below are go-version's: 1 segments, 4 or 7 pre-release,
// 10 metadata.
const VERSION_RE = new RegExp(
  "^v?([0-9]+(\\.[0-9]+)*?)" +
    "(-([0-9]+[0-9A-Za-z\\-~]*(\\.[0-9A-Za-z\\-~]+)*)|(-?([A-Za-z\\-~]+[0-9A-Za-z\\-~]*(\\.[0-9A-Za-z\\-~]+)*)))?" +
    "(\\+([0-9A-Za-z\\-~]+(\\.[0-9A-Za-z\\-~]+)*))?" +
    "?$",
);

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// parseInt64 is strconv.ParseInt(s, 10, 64): an optional sign and decimal digits within int64. Like Go it
// returns a value even when it fails, which comparePart relies on: 0 for a syntax error, the int64 bound
// of the sign when out of range. Segments are digits only, but pre-release parts may be "-1", which Go
// reads as a number.
function parseInt64(s) {
  if (!/^[+-]?[0-9]+$/.test(s)) return { n: 0n, ok: false };
  const n = BigInt(s);
  if (n < INT64_MIN) return { n: INT64_MIN, ok: false };
  if (n > INT64_MAX) return { n: INT64_MAX, ok: false };
  return { n, ok: true };
}

// parse is go-version's NewVersion: null when the string is not a version (a non-string, no match, or a
// segment beyond int64). Segments are BigInts: 8.3.0.9223372036854775807 must not round.
function parse(v) {
  if (typeof v !== "string") return null;
  const m = VERSION_RE.exec(v);
  if (m === null) return null;
  const segments = [];
  for (const s of m[1].split(".")) {
    const { n, ok } = parseInt64(s);
    if (!ok) return null;
    segments.push(n);
  }
  while (segments.length < 3) segments.push(0n);
  return { segments, pre: m[7] || m[4] || "", metadata: m[10] || "" };
}

function string(v) {
  let s = v.segments.join(".");
  if (v.pre !== "") s += "-" + v.pre;
  if (v.metadata !== "") s += "+" + v.metadata;
  return s;
}

// comparePart and comparePrereleases follow go-version line by line, quirks included: "01" and "1"
// compare as -1 both ways, a numeric part is below a non-numeric one, and an out-of-range number against a
// word compares by Go's clamped value.
function comparePart(self, other) {
  if (self === other) return 0;
  const { n: selfInt, ok: selfNumeric } = parseInt64(self);
  const { n: otherInt, ok: otherNumeric } = parseInt64(other);
  if (self === "") return otherNumeric ? -1 : 1;
  if (other === "") return selfNumeric ? 1 : -1;
  if (selfNumeric && !otherNumeric) return -1;
  if (!selfNumeric && otherNumeric) return 1;
  if (!selfNumeric && !otherNumeric && self > other) return 1;
  if (selfInt > otherInt) return 1;
  return -1;
}

function comparePrereleases(self, other) {
  if (self === other) return 0;
  const a = self.split(".");
  const b = other.split(".");
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = comparePart(i < a.length ? a[i] : "", i < b.length ? b[i] : "");
    if (c !== 0) return c;
  }
  return 0;
}

const allZero = (segs) => segs.every((s) => s === 0n);

// compare is go-version's Version.Compare. Note that the pre-release is compared only when both versions
// have the same number of segments (after padding to three): 8.3.0.0-beta equals 8.3.0, as in Go.
function compare(v, o) {
  if (string(v) === string(o)) return 0;
  const a = v.segments;
  const b = o.segments;
  if (a.length === b.length && a.every((s, i) => s === b[i])) {
    if (v.pre === "" && o.pre === "") return 0;
    if (v.pre === "") return 1;
    if (o.pre === "") return -1;
    return comparePrereleases(v.pre, o.pre);
  }
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (i > a.length - 1) return allZero(b.slice(i)) ? 0 : -1;
    if (i > b.length - 1) return allZero(a.slice(i)) ? 0 : 1;
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

// versionCompare is dws.version_compare(a, b): -1, 0 or 1, or undefined (which opa-wasm loads as "no
// result", so the Rego expression is undefined) when either is not a version string.
function versionCompare(a, b) {
  const va = parse(a);
  const vb = parse(b);
  if (va === null || vb === null) return undefined;
  return compare(va, vb);
}

// versionValid is dws.version_valid(a): whether a is a string go-version parses.
function versionValid(a) {
  return parse(a) !== null;
}

module.exports = { versionCompare, versionValid };
