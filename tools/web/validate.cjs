// Validate .glb files with the Khronos glTF Validator; prints one JSON report per file.
// Usage: node tools/web/validate.cjs FILE.glb [...]   (after `npm ci` in tools/web)
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

(async () => {
  const reports = [];
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      uri: path.basename(file), maxIssues: 1000,
    });
    reports.push(report);
  }
  process.stdout.write(JSON.stringify(reports));
})().catch((err) => { console.error(String(err)); process.exit(2); });
