/**
 * The report's plots: Vega-Lite specifications compiled to Vega and rendered to SVG here, at build
 * time, with no browser and no script in the output (vega View with renderer 'none', toSVG). Only
 * the CLI loads this module: vega is too big for the pipeline's Lambda bundles.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { ModelReportPredicate, ReportGroup } from '../core/attest/index.js';

type Evaluation = NonNullable<ModelReportPredicate['evaluation']>;

const FONT = 'Helvetica, Arial, sans-serif';
const CONFIG = {
  font: FONT,
  view: { stroke: '#bbb' },
  axis: { labelFontSize: 11, titleFontSize: 11 },
  title: { fontSize: 13, anchor: 'start' as const },
};

/** Renders a Vega-Lite spec to an SVG string; `prefix` keeps its element ids unique within the page. */
async function renderSvg(spec: TopLevelSpec, prefix: string): Promise<string> {
  const view = new vega.View(
    vega.parse(compile({ ...spec, config: { ...CONFIG, ...spec.config } } as TopLevelSpec).spec),
    {
      renderer: 'none',
    },
  );
  const svg = await view.toSVG();
  view.finalize();
  // Several SVGs inline in one page share one id space: vega numbers its clip paths from 1 in each.
  return svg
    .replace(/id="(clip\d+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#(clip\d+)\)/g, `url(#${prefix}-$1)`)
    .replace('<svg ', '<svg role="img" ');
}

type RateName = 'selectionRate' | 'tpr' | 'fpr';
const RATE_TITLE: Record<RateName, string> = {
  selectionRate: 'selection rate',
  tpr: 'true positive rate',
  fpr: 'false positive rate',
};

function label(g: ReportGroup): string {
  return `${g.value}${g.privileged ? ' (ref.)' : ''}${g.small ? ' (small)' : ''}`;
}

/**
 * Per-group rates of one attribute with their intervals, and the band the pipeline holds them to:
 * for the selection rate, at least `disparateImpact.min` × the reference group's rate (the
 * four-fifths rule); for TPR and FPR, within the maximum equalized odds difference of the reference.
 */
export async function ratesPlot(ev: Evaluation, attribute: string, prefix: string): Promise<string> {
  const groups = ev.groups.filter((g) => g.attribute === attribute);
  const ref = groups.find((g) => g.privileged);
  const di = ev.metrics.find((m) => m.name === 'disparateImpact' && m.attribute === attribute)?.threshold;
  const eod = ev.metrics.find((m) => m.name === 'equalizedOddsDifference' && m.attribute === attribute)
    ?.threshold?.max;
  const panels = (['selectionRate', 'tpr', 'fpr'] as const).map((rate) => {
    const values = groups.map((g) => ({
      group: label(g),
      value: g[rate].value,
      lower: g[rate].interval?.lower ?? g[rate].value,
      upper: g[rate].interval?.upper ?? g[rate].value,
      reliability: g.small ? 'small group' : 'enough rows',
    }));
    const refValue = ref?.[rate].value ?? null;
    const band: { lo: number; hi: number; what: string }[] = [];
    if (refValue !== null && rate === 'selectionRate' && di?.min !== undefined)
      band.push({
        lo: Math.min(1, refValue * di.min),
        hi: Math.min(1, di.max !== undefined ? refValue * di.max : 1),
        what: 'allowed',
      });
    if (refValue !== null && rate !== 'selectionRate' && eod !== undefined)
      band.push({ lo: Math.max(0, refValue - eod), hi: Math.min(1, refValue + eod), what: 'allowed' });
    return {
      width: 200,
      height: { step: 22 },
      title: RATE_TITLE[rate],
      layer: [
        ...(band.length
          ? [
              {
                data: { values: band },
                mark: { type: 'rect' as const, color: '#2e7d32', opacity: 0.12 },
                encoding: {
                  x: { field: 'lo', type: 'quantitative' as const },
                  x2: { field: 'hi' },
                },
              },
              {
                data: { values: band },
                mark: { type: 'rule' as const, color: '#2e7d32', strokeDash: [4, 3] },
                encoding: { x: { field: 'lo', type: 'quantitative' as const } },
              },
            ]
          : []),
        {
          data: { values },
          mark: { type: 'rule' as const, color: '#555' },
          encoding: {
            y: { field: 'group', type: 'nominal' as const, title: null, sort: null },
            x: {
              field: 'lower',
              type: 'quantitative' as const,
              scale: { domain: [0, 1] },
              title: `${Math.round(ev.confidenceLevel * 100)}% interval`,
            },
            x2: { field: 'upper' },
          },
        },
        {
          data: { values },
          mark: { type: 'point' as const, filled: true, size: 60 },
          encoding: {
            y: { field: 'group', type: 'nominal' as const, sort: null },
            x: { field: 'value', type: 'quantitative' as const },
            color: {
              field: 'reliability',
              type: 'nominal' as const,
              scale: { domain: ['enough rows', 'small group'], range: ['#1f4e79', '#c62828'] },
              legend: { title: null, orient: 'bottom' as const },
            },
          },
        },
      ],
    };
  });
  return renderSvg(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `${attribute}: rates per group (green: allowed band around the reference group)`,
      hconcat: panels,
      resolve: { legend: { color: 'shared' } },
    } as TopLevelSpec,
    prefix,
  );
}

/** Disparate impact per attribute with its interval, against the allowed band (four-fifths: 0.8–1.25). */
export async function disparateImpactPlot(ev: Evaluation, prefix: string): Promise<string | undefined> {
  const values = ev.metrics
    .filter((m) => m.name === 'disparateImpact' && m.attribute !== undefined && m.value !== null)
    .map((m) => ({
      attribute: m.attribute as string,
      value: m.value as number,
      lower: m.interval?.lower ?? (m.value as number),
      upper: m.interval?.upper ?? (m.value as number),
      lo: m.threshold?.min ?? 0.8,
      hi: m.threshold?.max ?? 1.25,
      verdict: m.passed === false ? 'outside the band' : 'within the band',
    }));
  if (values.length === 0) return undefined;
  const top = Math.max(2, ...values.map((v) => v.upper + 0.1), ...values.map((v) => v.hi + 0.1));
  return renderSvg(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Disparate impact (selection-rate ratio) against the allowed band',
      width: 420,
      height: { step: 30 },
      data: { values },
      encoding: { y: { field: 'attribute', type: 'nominal', title: null } },
      layer: [
        {
          mark: { type: 'rect', color: '#2e7d32', opacity: 0.12 },
          encoding: {
            x: { field: 'lo', type: 'quantitative', scale: { domain: [0, top] } },
            x2: { field: 'hi' },
          },
        },
        {
          mark: { type: 'rule', color: '#2e7d32', strokeDash: [4, 3] },
          encoding: { x: { field: 'lo', type: 'quantitative' } },
        },
        {
          mark: { type: 'rule', color: '#2e7d32', strokeDash: [4, 3] },
          encoding: { x: { field: 'hi', type: 'quantitative' } },
        },
        {
          mark: { type: 'rule', color: '#555' },
          encoding: {
            x: { field: 'lower', type: 'quantitative', title: 'disparate impact (1 = parity)' },
            x2: { field: 'upper' },
          },
        },
        {
          mark: { type: 'point', filled: true, size: 80 },
          encoding: {
            x: { field: 'value', type: 'quantitative' },
            color: {
              field: 'verdict',
              type: 'nominal',
              scale: { domain: ['within the band', 'outside the band'], range: ['#1f4e79', '#c62828'] },
              legend: { title: null, orient: 'bottom' },
            },
          },
        },
      ],
    } as TopLevelSpec,
    prefix,
  );
}

/** A 2×2 confusion matrix per group (rows: actual, columns: predicted), counts written in. */
export async function confusionPlot(ev: Evaluation, prefix: string): Promise<string | undefined> {
  if (ev.groups.length === 0) return undefined;
  const values = ev.groups.flatMap((g) => {
    const group = `${g.attribute}=${g.value}${g.small ? ' (small)' : ''}`;
    return [
      { group, actual: 'positive', predicted: 'positive', n: g.tp },
      { group, actual: 'positive', predicted: 'negative', n: g.fn },
      { group, actual: 'negative', predicted: 'positive', n: g.fp },
      { group, actual: 'negative', predicted: 'negative', n: g.tn },
    ];
  });
  return renderSvg(
    {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: 'Confusion matrix per group (held-out set)',
      data: { values },
      facet: { field: 'group', type: 'nominal', title: null, sort: null },
      columns: 4,
      spec: {
        width: 110,
        height: 110,
        encoding: {
          x: { field: 'predicted', type: 'nominal', sort: ['positive', 'negative'] },
          y: { field: 'actual', type: 'nominal', sort: ['positive', 'negative'] },
        },
        layer: [
          {
            mark: 'rect',
            encoding: {
              color: { field: 'n', type: 'quantitative', scale: { scheme: 'blues' }, legend: null },
            },
          },
          {
            mark: { type: 'text', fontSize: 13 },
            encoding: {
              text: { field: 'n', type: 'quantitative' },
              color: { value: '#000' },
            },
          },
        ],
      },
      resolve: { scale: { color: 'independent' } },
    } as TopLevelSpec,
    prefix,
  );
}
