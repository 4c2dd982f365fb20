import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/cli/commands/gate.js';
import { captureText } from '../helpers/workspace.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'gate');

const capture = (cwd = fixtures) => captureText(cwd);

describe('veritrail gate', () => {
  describe('when the facts pass the default policy', () => {
    it('prints ALLOW and exits 0', async () => {
      const io = capture();
      expect(await run(['--input', 'facts-allow.json'], io)).toBe(0);
      expect(io.stdout).toMatch(
        /^ALLOW\n {2}- provenance is verified.*\[ship-when-provenance-and-code-checks-pass\]\n$/,
      );
    });
  });

  describe('when the facts fail', () => {
    it('prints each reason with its policy id and exits 3', async () => {
      const io = capture();
      expect(
        await run(
          ['--policy', join('..', '..', '..', 'policies', 'default.cedar'), '--input', 'facts-deny.json'],
          io,
        ),
      ).toBe(3);
      expect(io.stdout).toBe(
        'DENY\n  - disparate impact 0.72 for age_group is below the minimum 0.80 (four-fifths rule)  [disparate-impact-below-minimum]\n',
      );
    });

    it('prints the decision as JSON with --json', async () => {
      const io = capture();
      expect(
        await run(['--policy', 'strict-medical.cedar', '--input', 'facts-deny.json', '--json'], io),
      ).toBe(3);
      expect(JSON.parse(io.stdout)).toEqual({
        decision: 'deny',
        policies: ['medical-accuracy', 'medical-parity'],
        reasons: [
          'accuracy 0.8412 is below 0.90, the floor for diagnostic models',
          'demographic parity difference 0.11 for age_group exceeds 0.05',
        ],
      });
    });
  });

  describe('when the facts leave out "worst"', () => {
    it('computes it from the attributes', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vt-gate-'));
      const { worst: _, ...facts } = JSON.parse(readFileSync(join(fixtures, 'facts-deny.json'), 'utf8'));
      writeFileSync(join(dir, 'facts.json'), JSON.stringify(facts));
      const io = capture(dir);
      expect(await run(['--input', 'facts.json', '--json'], io)).toBe(3);
      expect(JSON.parse(io.stdout).policies).toEqual(['disparate-impact-below-minimum']);
    });
  });

  describe('when the policy is malformed', () => {
    it('exits 2 and names the file, line and column', async () => {
      const io = capture();
      expect(await run(['--policy', 'malformed.cedar', '--input', 'facts-allow.json'], io)).toBe(2);
      expect(io.stderr).toMatch(/^veritrail gate: malformed\.cedar:6:72: the policy does not parse/);
      expect(io.stdout).toBe('');
    });
  });

  describe('when the usage is wrong', () => {
    it.each([
      [['--policy', 'strict-medical.cedar'], '--input <facts.json> is required'],
      [['--input', 'facts-allow.json', '--bogus'], 'Unknown option'],
      [['--input', 'missing.json'], 'cannot read the facts file missing.json (ENOENT)'],
      [['--input', 'malformed.cedar'], 'is not valid JSON'],
      [['--input', 'facts-allow.json', 'extra'], 'unexpected argument "extra"'],
    ])('exits 2 for %j', async (args, message) => {
      const io = capture();
      expect(await run(args, io)).toBe(2);
      expect(io.stderr).toContain(message);
    });

    it('exits 2 when a fact is misspelt', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'vt-gate-'));
      const facts = JSON.parse(readFileSync(join(fixtures, 'facts-allow.json'), 'utf8'));
      facts.codeCheckPassed = facts.codeChecksPassed;
      writeFileSync(join(dir, 'facts.json'), JSON.stringify(facts));
      const io = capture(dir);
      expect(await run(['--input', 'facts.json'], io)).toBe(2);
      expect(io.stderr).toContain('codeCheckPassed');
    });

    it('prints usage with --help and exits 0', async () => {
      const io = capture();
      expect(await run(['--help'], io)).toBe(0);
      expect(io.stdout).toContain('usage: veritrail gate');
    });
  });
});
