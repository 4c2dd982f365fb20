#!/usr/bin/env node
// Generates the synthetic credit-scoring dataset deterministically (same bytes on every machine).
//
// Historical bias is built in on purpose: women's recorded incomes are lower for the same
// underlying ability to repay (a pay gap), and applicants under 25 have short credit histories.
// A model trained only on income and history still picks these up as proxies, so the fairness
// step has a real, measurable disparity to find, while the label itself depends on ability alone.
//
// Usage: node generate.mjs [rows] > applications.csv
const rows = Number(process.argv[2] ?? 24000);

// mulberry32: a tiny seeded PRNG, so the file is reproducible byte for byte.
let state = 0x5eed_c0de;
function random() {
  state = (state + 0x6d2b79f5) | 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function normal() {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const round = (x, d) => Number(x.toFixed(d));

const out = [];
out.push(
  'applicant_id,sex,age_group,income,debt_ratio,credit_history_years,late_payments,loan_amount,employment_years,repaid',
);
for (let i = 0; i < rows; i++) {
  const sex = random() < 0.48 ? 'female' : 'male';
  const a = random();
  const ageGroup = a < 0.16 ? 'under_25' : a < 0.86 ? '25_to_60' : 'over_60';
  const ability = normal(); // latent ability to repay: identically distributed in every group
  const payGap = sex === 'female' ? 0.88 : 1.0;
  const income = round(clamp(Math.exp(3.7 + 0.35 * ability + 0.25 * normal()) * payGap, 8, 400), 1);
  const debtRatio = round(clamp(0.35 - 0.08 * ability + 0.12 * normal(), 0.01, 0.95), 3);
  const historyMax = ageGroup === 'under_25' ? 8 : 40;
  const history = round(
    clamp((ageGroup === 'under_25' ? 7.5 : 11) + 2 * ability + 4 * normal(), 0, historyMax),
    1,
  );
  const late = Math.max(0, Math.round(1.2 - 0.9 * ability + normal()));
  const loan = round(clamp(income * (0.6 + 0.5 * random()), 2, 500), 1);
  const employment = round(
    clamp((ageGroup === 'under_25' ? 5.5 : 8) + 1.5 * ability + 3 * normal(), 0, 45),
    1,
  );
  const logit = 1.1 + 1.6 * ability - 0.6 * (debtRatio - 0.35) * 5 + 0.15 * normal();
  const repaid = random() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
  out.push(
    [
      `A${String(i + 1).padStart(6, '0')}`,
      sex,
      ageGroup,
      income,
      debtRatio,
      history,
      late,
      loan,
      employment,
      repaid,
    ].join(','),
  );
}
process.stdout.write(`${out.join('\n')}\n`);
