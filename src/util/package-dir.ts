// Files shipped in the package but outside the compiled code (protos, the
// dashboard's page) are found from the package root: the first folder above
// this module holding a package.json and the file asked for. So they are
// found from src/ (ts runners), dist/ and any other build output alike.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder `relative` (e.g. "proto/etcd") under the package root, checked to hold `file`. */
export function packageDir(relative: string, file: string): string {
  const here = fileURLToPath(import.meta.url);
  for (let dir = dirname(here); ; dir = dirname(dir)) {
    const candidate = join(dir, relative);
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, file))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${relative}/${file} not found above ${here}`);
  }
}
