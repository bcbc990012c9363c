/**
 * Coreset Curation's App component: the instant pruning-rate slider.
 *
 * The Python panel (panels/slider.py) renders it with
 * `types.View(component="CoresetRateSlider", composite_view=True, rev, rate, on_release, on_summary)`
 * and sends, once per order, a per-rate summary as panel data under `rate_slider.<rev>`.
 * While the user drags, everything drawn here (kept count, class bars, histogram and its
 * threshold) comes from that summary: no server round trip. On release the component calls
 * the panel's `on_release` method with the rate; the panel stores it and moves the grid.
 *
 * React and the @fiftyone/* packages are the App's own (window globals, see vite.config.js).
 */
import React, { useCallback, useEffect, useRef, useState } from "react";
import { PluginComponentType, registerComponent } from "@fiftyone/plugins";
import { useTriggerPanelEvent } from "@fiftyone/operators";

const KEPT = "#ff6d04";
const PRUNED = "#9e9e9e";
const CUT = "#d32f2f";

const fmt = (n) => Number(n).toLocaleString("en-US");

export function CoresetRateSlider(props) {
  const { schema, data } = props;
  const view = (schema && schema.view) || {};
  const { rev, rate = 50, on_release, on_summary, label = "Pruning rate (%)" } = view;
  const summary = data && rev ? data[rev] : null;
  const trigger = useTriggerPanelEvent();
  const [value, setValue] = useState(rate);
  const dragging = useRef(false);
  const released = useRef(rate);

  // The panel's rate wins unless the user is moving the thumb (a typed rate, a reload...).
  useEffect(() => {
    if (!dragging.current) setValue(rate);
    released.current = rate;
  }, [rate]);

  // No summary for this order (the App was reloaded, or the data came after the schema): ask once.
  const asked = useRef(null);
  useEffect(() => {
    if (!summary && rev && on_summary && asked.current !== rev) {
      asked.current = rev;
      trigger(on_summary, { rev });
    }
  }, [summary, rev, on_summary, trigger]);

  const release = useCallback(
    (event) => {
      dragging.current = false;
      const v = Number(event.target.value);
      if (v === released.current || !on_release) return;
      released.current = v;
      trigger(on_release, { rate: v });
    },
    [on_release, trigger]
  );

  const onInput = useCallback((event) => {
    dragging.current = true;
    setValue(Number(event.target.value));
  }, []);

  // The typed rate: a percent, clamped to 0-99 and rounded where everyone sees it, sent on Enter or blur.
  const [typed, setTyped] = useState(null);
  const commitTyped = useCallback(() => {
    if (typed === null) return;
    const parsed = Number(String(typed).replace(",", ".").replace("%", "").trim());
    setTyped(null);
    if (String(typed).trim() === "" || !Number.isFinite(parsed)) return;
    const v = Math.max(0, Math.min(99, Math.round(parsed)));
    setValue(v);
    if (v !== released.current && on_release) {
      released.current = v;
      trigger(on_release, { rate: v });
    }
  }, [typed, on_release, trigger]);

  return (
    <div data-cy="coreset-rate-slider" style={{ padding: "8px 4px", width: "100%", boxSizing: "border-box" }}>
      <label style={{ display: "flex", alignItems: "center", gap: 12, flexWrap: "wrap" }}>
        <span style={{ opacity: 0.8 }}>{label}</span>
        <input
          type="range"
          min={0}
          max={99}
          step={1}
          value={value}
          aria-label={label}
          data-cy="coreset-rate-range"
          onChange={onInput}
          onPointerUp={release}
          onKeyUp={release}
          onBlur={(e) => dragging.current && release(e)}
          style={{ width: 360, accentColor: KEPT }}
        />
        <b data-cy="coreset-rate-value" style={{ minWidth: 36 }}>
          {value} %
        </b>
      </label>
      <label style={{ display: "inline-flex", alignItems: "center", gap: 8, marginTop: 6 }}>
        <span style={{ opacity: 0.8 }}>or type it (%, 0-99)</span>
        <input
          type="text"
          inputMode="decimal"
          data-cy="coreset-rate-typed"
          aria-label="or type it"
          value={typed === null ? String(value) : typed}
          onChange={(e) => setTyped(e.target.value)}
          onKeyDown={(e) => e.key === "Enter" && commitTyped()}
          onBlur={commitTyped}
          style={{ width: 64, padding: "4px 6px", font: "inherit", color: "inherit", background: "transparent",
                   border: "1px solid rgba(128,128,128,0.6)", borderRadius: 4 }}
        />
      </label>
      {summary ? <Drawn summary={summary} rate={value} /> : <div style={{ opacity: 0.7 }}>Loading the order…</div>}
    </div>
  );
}

function Drawn({ summary, rate }) {
  const r = Math.max(0, Math.min(summary.kept.length - 1, rate));
  const kept = summary.kept[r];
  const threshold = summary.threshold ? summary.threshold[r] : null;
  return (
    <div>
      <p data-cy="coreset-kept-summary" style={{ margin: "8px 0" }}>
        <b>Kept {fmt(kept)}</b>
        {` · pruned ${fmt(summary.n - kept)} of ${fmt(summary.n)} scored samples`}
        {threshold !== null && threshold !== undefined ? ` · score threshold ${threshold.toFixed(4)}` : ""}
        {summary.unscored ? ` · ${fmt(summary.unscored)} without a score (ignored)` : ""}
      </p>
      <Histogram summary={summary} r={r} threshold={threshold} />
      {summary.classes ? <ClassBars summary={summary} r={r} /> : null}
    </div>
  );
}

function Legend() {
  return (
    <g fontSize={11}>
      <rect x={0} y={-9} width={10} height={10} fill={KEPT} />
      <text x={14} y={0} fill="currentColor">
        kept
      </text>
      <rect x={52} y={-9} width={10} height={10} fill={PRUNED} />
      <text x={66} y={0} fill="currentColor">
        pruned
      </text>
    </g>
  );
}

const W = 640;
const H = 170;
const M = { l: 44, r: 10, t: 26, b: 24 };

function Histogram({ summary, r, threshold }) {
  const totals = summary.bin_totals;
  const keptBins = summary.bin_kept[r];
  const edges = summary.edges;
  const top = Math.max(1, ...totals);
  const lo = edges[0];
  const hi = edges[edges.length - 1];
  const span = hi - lo || 1;
  const x = (v) => M.l + ((v - lo) / span) * (W - M.l - M.r);
  const y = (c) => H - M.b - (c / top) * (H - M.t - M.b);
  const cut = threshold !== null && threshold !== undefined;
  return (
    <svg data-cy="coreset-histogram" viewBox={`0 0 ${W} ${H}`} style={{ width: "100%", maxWidth: W, display: "block" }}>
      <text x={4} y={14} fontSize={13} fill="currentColor">
        {`'${summary.field || "score"}' histogram${cut ? " (cut dashed)" : ""}`}
      </text>
      <g transform={`translate(${W - 120}, 14)`}>
        <Legend />
      </g>
      {totals.map((t, i) => {
        const x0 = x(edges[i]) + 0.5;
        const w = Math.max(1, x(edges[i + 1]) - x(edges[i]) - 1);
        const k = keptBins[i];
        return (
          <g key={i}>
            <rect x={x0} y={y(t)} width={w} height={y(k) - y(t)} fill={PRUNED} />
            <rect x={x0} y={y(k)} width={w} height={H - M.b - y(k)} fill={KEPT} />
          </g>
        );
      })}
      <line x1={M.l} x2={W - M.r} y1={H - M.b} y2={H - M.b} stroke="currentColor" strokeOpacity={0.4} />
      <text x={M.l} y={H - 6} fontSize={11} fill="currentColor">
        {lo.toPrecision(3)}
      </text>
      <text x={W - M.r} y={H - 6} fontSize={11} fill="currentColor" textAnchor="end">
        {hi.toPrecision(3)}
      </text>
      <text x={M.l - 4} y={M.t + 8} fontSize={11} fill="currentColor" textAnchor="end">
        {fmt(top)}
      </text>
      {cut ? (
        <line
          data-cy="coreset-threshold"
          x1={x(threshold)}
          x2={x(threshold)}
          y1={M.t - 4}
          y2={H - M.b}
          stroke={CUT}
          strokeWidth={2}
          strokeDasharray="5,4"
        />
      ) : null}
    </svg>
  );
}

function ClassBars({ summary, r }) {
  const names = summary.classes;
  const totals = summary.class_totals;
  const keptRow = summary.class_kept[r];
  const top = Math.max(1, ...totals);
  const band = (W - M.l - M.r) / Math.max(1, names.length);
  const rotate = names.length > 12;
  const bottom = rotate ? 60 : M.b;
  const h = H + (rotate ? 36 : 0);
  const y = (c) => h - bottom - (c / top) * (h - M.t - bottom);
  return (
    <svg data-cy="coreset-class-bars" viewBox={`0 0 ${W} ${h}`} style={{ width: "100%", maxWidth: W, display: "block" }}>
      <text x={4} y={14} fontSize={13} fill="currentColor">
        {"Class balance: kept vs all" +
          (summary.classes_left_out ? ` (${summary.classes_left_out} smaller classes not drawn)` : "")}
      </text>
      <g transform={`translate(${W - 120}, 14)`}>
        <Legend />
      </g>
      {names.map((name, i) => {
        const x0 = M.l + i * band + band * 0.1;
        const w = Math.max(1, band * 0.8);
        const cx = x0 + w / 2;
        return (
          <g key={name}>
            <title>{`${name}: kept ${fmt(keptRow[i])} of ${fmt(totals[i])}`}</title>
            <rect x={x0} y={y(totals[i])} width={w} height={h - bottom - y(totals[i])} fill={PRUNED} />
            <rect x={x0} y={y(keptRow[i])} width={w} height={h - bottom - y(keptRow[i])} fill={KEPT} />
            <text
              x={cx}
              y={h - bottom + 14}
              fontSize={11}
              fill="currentColor"
              textAnchor={rotate ? "end" : "middle"}
              transform={rotate ? `rotate(-45, ${cx}, ${h - bottom + 14})` : undefined}
            >
              {name.length > 14 ? name.slice(0, 13) + "…" : name}
            </text>
          </g>
        );
      })}
      <line x1={M.l} x2={W - M.r} y1={h - bottom} y2={h - bottom} stroke="currentColor" strokeOpacity={0.4} />
      <text x={M.l - 4} y={M.t + 8} fontSize={11} fill="currentColor" textAnchor="end">
        {fmt(top)}
      </text>
    </svg>
  );
}

registerComponent({
  name: "CoresetRateSlider",
  label: "Coreset rate slider",
  component: CoresetRateSlider,
  type: PluginComponentType.Component,
  activator: () => true,
});
