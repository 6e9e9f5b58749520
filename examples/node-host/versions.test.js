// Checks the JavaScript dws.* builtins against the shared version table, policy/testdata/versions.json,
// which policy/versions_table_test.go holds to hashicorp/go-version and to precheck's Go builtins.
//
//   node versions.test.js
"use strict";

const path = require("node:path");
const { versionCompare, versionValid } = require("./versions");

const table = require(path.join(__dirname, "..", "..", "policy", "testdata", "versions.json"));
// The table writes "undefined" as null; the builtin must return undefined itself (a null would be a
// defined result in the module).
const show = (c) => (c === undefined ? "undefined" : String(c));
const expected = (c) => (c === null ? "undefined" : String(c));

let failed = 0;
for (const r of table) {
  const compare = versionCompare(r.a, r.b);
  const aValid = versionValid(r.a);
  const bValid = versionValid(r.b);
  if (show(compare) !== expected(r.compare) || aValid !== r.a_valid || bValid !== r.b_valid) {
    failed++;
    console.log(`FAIL ${r.note}: a=${JSON.stringify(r.a)} b=${JSON.stringify(r.b)}: ` +
      `compare ${show(compare)}, valid ${aValid}/${bValid}; the table says ${expected(r.compare)}, ${r.a_valid}/${r.b_valid}`);
  }
}
console.log(`version table: ${table.length - failed}/${table.length} rows agree with hashicorp/go-version`);
process.exit(failed === 0 ? 0 : 1);
