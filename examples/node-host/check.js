// The conformance check the Go test (node_host_test.go) runs:
//
//   node check.js DIR
//
// DIR holds precheck.wasm, data.json, optionally bundle.tar.gz (then checked the same way), and manifest.json: {"now_ns": "...", "cases": [{"name", "input",
// "decision"}]}, each input a document and each decision precheck's own (json.Marshal of policy.Decision)
// for it at now_ns. For every case the module's raw result must equal precheck's decision after canonical
// JSON re-serialisation of both (sorted keys, no whitespace) and nothing else. Then, without setData,
// no document precheck denies may be allowed. Exits 1 on any failure, listing each.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { load, readBundle } = require("./host");

const MAX_DIFFS = 5;

// canonical is JSON with object members sorted by name (UTF-16 order, as RFC 8785) and no whitespace.
// It changes nothing else: arrays keep their order, and no member is added or dropped.
function canonical(v) {
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (v !== null && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonical(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}

// diffs lists where got and want differ, by path, at most max of them.
function diffs(got, want, at = "", out = [], max = MAX_DIFFS) {
  if (out.length >= max) return out;
  const kind = (v) => (Array.isArray(v) ? "array" : v === null ? "null" : typeof v);
  if (kind(got) !== kind(want) || (kind(got) !== "object" && kind(got) !== "array")) {
    if (canonical(got) !== canonical(want)) {
      out.push(`${at || "."}: module ${show(got)}, precheck ${show(want)}`);
    }
    return out;
  }
  if (kind(got) === "array") {
    const items = (a) => a.map(canonical);
    if (canonical(got) === canonical(want)) return out;
    if (got.length === want.length && canonical(items(got).sort()) === canonical(items(want).sort())) {
      out.push(`${at}: the same items in another order: module ${order(got)}, precheck ${order(want)}`);
      return out;
    }
    if (got.length !== want.length) out.push(`${at}: module has ${got.length} items, precheck ${want.length}`);
    for (let i = 0; i < Math.min(got.length, want.length); i++) diffs(got[i], want[i], `${at}[${i}]`, out, max);
    return out;
  }
  for (const k of new Set([...Object.keys(got), ...Object.keys(want)].sort())) {
    const p = `${at}.${k}`;
    if (!(k in want)) out.push(`${p}: module has ${show(got[k])}, precheck has no such member`);
    else if (!(k in got)) out.push(`${p}: module has no such member, precheck has ${show(want[k])}`);
    else diffs(got[k], want[k], p, out, max);
    if (out.length >= max) break;
  }
  return out.slice(0, max);
}

// order names a list of findings by code and field, to show how two orders differ.
function order(a) {
  return "[" + a.map((f) => (f && f.code ? `${f.code} ${f.field}` : show(f))).join(", ") + "]";
}

function show(v) {
  const s = canonical(v);
  return s === undefined ? "undefined" : s.length > 120 ? s.slice(0, 117) + "..." : s;
}

async function main(dir) {
  const read = (f) => fs.readFileSync(path.join(dir, f));
  const wasm = read("precheck.wasm");
  const manifest = JSON.parse(read("manifest.json"));
  const now = BigInt(manifest.now_ns);
  const cases = manifest.cases.map((c) => ({
    name: c.name,
    input: read(c.input),
    want: JSON.parse(read(c.decision)),
  }));
  const failures = [];

  const hosts = [["precheck.wasm", await load(wasm, read("data.json"), { clock: () => now })]];
  if (fs.existsSync(path.join(dir, "bundle.tar.gz"))) {
    const files = readBundle(read("bundle.tar.gz"));
    hosts.push(["bundle.tar.gz", await load(files["/policy.wasm"], files["/data.json"], { clock: () => now })]);
  }
  for (const [label, host] of hosts) {
    let matched = 0;
    for (const c of cases) {
      let got;
      try {
        got = host.decide(c.input);
      } catch (err) {
        failures.push(`${label}: ${c.name}: evaluation failed: ${err && err.message ? err.message : err}`);
        continue;
      }
      if (canonical(got) === canonical(c.want)) {
        matched++;
        continue;
      }
      const d = diffs(got, c.want);
      failures.push(`${label}: ${c.name}: the module's decision is not precheck's:\n    ${d.join("\n    ")}`);
    }
    console.log(`${label} with its data: ${matched}/${cases.length} decisions are precheck's`);
  }

  // A host that forgets setData evaluates against an empty data document.
  const bare = await load(wasm, undefined, { clock: () => now });
  const tally = { denied: 0, allowed: 0, undefined: 0 };
  let denied = 0;
  for (const c of cases) {
    if (c.want.allowed) continue;
    denied++;
    let got;
    try {
      got = bare.decide(c.input);
    } catch (err) {
      tally.undefined++; // no decision is a refusal
      continue;
    }
    if (got && got.allowed === false) {
      tally.denied++;
    } else {
      tally.allowed++;
      failures.push(`${c.name}: without setData the module answers ${show(got)}, but precheck denies it`);
    }
  }
  console.log(`precheck.wasm without data: of ${denied} documents precheck denies, ${tally.denied} denied, ` +
    `${tally.undefined} undefined, ${tally.allowed} allowed`);

  for (const f of failures) console.log(`FAIL ${f}`);
  return failures.length === 0 ? 0 : 1;
}

if (process.argv.length !== 3) {
  console.error("usage: node check.js DIR");
  process.exit(2);
}
main(process.argv[2]).then((code) => process.exit(code), (err) => {
  console.error("check:", err && err.stack ? err.stack : err);
  process.exit(1);
});
