// Writing a benchmark's report: JSON (everything measured, with the machine
// and the command) and a markdown table beside it under docs/bench/, a
// progress line while a long run goes on, and markdown table helpers.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { machineInfo, machineMarkdown, repoRoot, type MachineInfo } from './machine.js';

/** docs/bench in the repository. */
export const REPORT_DIR = join(repoRoot(), 'docs', 'bench');

/** A markdown table. */
export function mdTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const line = (r: readonly (string | number)[]): string => `| ${r.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Formats a number with at most `digits` decimals and thousands separators. */
export function fmt(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** The median of the finite values of `xs` (the mean of the middle two for an even count); NaN when there are none. */
export function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Writes docs/bench/<name>.json and <name>.md; returns their paths. */
export function writeReport(name: string, command: string, data: unknown, markdownBody: string, machine: MachineInfo = machineInfo()): string[] {
  mkdirSync(REPORT_DIR, { recursive: true });
  const json = join(REPORT_DIR, `${name}.json`);
  const md = join(REPORT_DIR, `${name}.md`);
  writeFileSync(json, JSON.stringify({ command, machine, data }, null, 2) + '\n');
  writeFileSync(md, `${markdownBody.trim()}\n\n${machineMarkdown(machine, command)}\n`);
  return [json, md];
}

/** Prints a progress line at most every `everyMs` (and always when forced). */
export function progress(label: string, everyMs = 10_000): (line: string, force?: boolean) => void {
  let last = 0;
  const t0 = Date.now();
  return (line, force = false) => {
    const now = Date.now();
    if (!force && now - last < everyMs) return;
    last = now;
    console.log(`[${label} +${Math.round((now - t0) / 1000)}s] ${line}`);
  };
}
