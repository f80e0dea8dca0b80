// SVG charts: the logs volume histogram (stacked bars by level) and the
// metric graph (one line per series, legend, hover values). Both share a
// frame with time and value axes, a hover read-out, and drag-to-zoom
// (onSelect(startMs, endMs)). They redraw when their container resizes.

import { h, svg, formatNumber, formatTime } from './dom.js';

const MARGIN = { left: 52, right: 12, top: 8, bottom: 22 };
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000].map((s) => s * 1000);

function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  if (!(raw > 0)) return 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
}

function timeTicks(start, end, width) {
  const want = Math.max(2, Math.floor(width / 110));
  const step = TIME_STEPS.find((s) => (end - start) / s <= want) || TIME_STEPS[TIME_STEPS.length - 1];
  const tz = new Date(start).getTimezoneOffset() * 60000;
  const ticks = [];
  for (let t = Math.ceil((start - tz) / step) * step + tz; t <= end; t += step) ticks.push(t);
  const fmt = (t) => {
    const s = formatTime(t, false);
    if (step >= 86400000) return s.slice(5, 10);
    if (end - start > 86400000) return `${s.slice(5, 10)} ${s.slice(11, 16)}`;
    return step < 60000 ? s.slice(11, 19) : s.slice(11, 16);
  };
  return ticks.map((t) => [t, fmt(t)]);
}

/**
 * Draws the frame and wires interaction. draw(ctx) adds the data; hover(ms)
 * returns the read-out lines for the time under the mouse.
 */
function chartFrame(container, { height, start, end, yMin = 0, yMax, draw, hover, onSelect, id, integer = false }) {
  const width = Math.max(200, container.clientWidth);
  const pw = width - MARGIN.left - MARGIN.right;
  const ph = height - MARGIN.top - MARGIN.bottom;
  const lo = Math.min(0, yMin);
  const raw = niceStep((yMax || 1) - lo, Math.max(2, Math.floor(ph / 28)));
  // Counts have no half lines.
  const step = integer ? Math.max(1, raw) : raw;
  const top = Math.max(step, Math.ceil((yMax || 1) / step) * step);
  const bottom = lo < 0 ? Math.floor(lo / step) * step : 0;
  const x = (ms) => MARGIN.left + ((ms - start) / (end - start)) * pw;
  const y = (v) => MARGIN.top + ph - ((v - bottom) / (top - bottom)) * ph;
  const root = svg('svg', { width, height, class: 'chart', id, viewBox: `0 0 ${width} ${height}` });
  const grid = svg('g', { class: 'grid' });
  for (let v = bottom; v <= top + step / 2; v += step) {
    grid.append(svg('line', { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v) }));
    grid.append(svg('text', { x: MARGIN.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, formatNumber(v)));
  }
  for (const [t, label] of timeTicks(start, end, pw)) {
    grid.append(svg('line', { x1: x(t), x2: x(t), y1: MARGIN.top, y2: MARGIN.top + ph, class: 'vgrid' }));
    grid.append(svg('text', { x: x(t), y: height - 6, 'text-anchor': 'middle' }, label));
  }
  root.append(grid);
  draw({ root, x, y, pw, ph, width, height, bottom });
  const cursor = svg('line', { class: 'cursor', y1: MARGIN.top, y2: MARGIN.top + ph, visibility: 'hidden' });
  const selection = svg('rect', { class: 'selection', y: MARGIN.top, height: ph, visibility: 'hidden' });
  root.append(cursor, selection);
  const tip = h('div', { class: 'chart-tip', hidden: true });
  const wrap = h('div', { class: 'chart-wrap' }, root, tip);
  container.replaceChildren(wrap);

  const msAt = (px) => start + ((px - MARGIN.left) / pw) * (end - start);
  const localX = (e) => e.clientX - root.getBoundingClientRect().left;
  let dragFrom = null;
  root.addEventListener('pointermove', (e) => {
    const px = Math.min(Math.max(localX(e), MARGIN.left), MARGIN.left + pw);
    cursor.setAttribute('x1', px);
    cursor.setAttribute('x2', px);
    cursor.setAttribute('visibility', 'visible');
    if (dragFrom !== null) {
      selection.setAttribute('x', Math.min(dragFrom, px));
      selection.setAttribute('width', Math.abs(px - dragFrom));
      selection.setAttribute('visibility', 'visible');
    }
    const lines = hover(msAt(px));
    if (!lines || !lines.length) {
      tip.hidden = true;
      return;
    }
    tip.replaceChildren(...lines.map(([color, text]) => h('div', {}, color ? h('i', { style: { background: color } }) : null, text)));
    tip.hidden = false;
    const left = px + 14 + tip.offsetWidth > width ? px - 14 - tip.offsetWidth : px + 14;
    tip.style.left = `${left}px`;
  });
  root.addEventListener('pointerleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    tip.hidden = true;
  });
  if (onSelect) {
    root.addEventListener('pointerdown', (e) => {
      dragFrom = Math.min(Math.max(localX(e), MARGIN.left), MARGIN.left + pw);
      root.setPointerCapture(e.pointerId);
      e.preventDefault();
    });
    root.addEventListener('pointerup', (e) => {
      if (dragFrom === null) return;
      const to = Math.min(Math.max(localX(e), MARGIN.left), MARGIN.left + pw);
      const from = dragFrom;
      dragFrom = null;
      selection.setAttribute('visibility', 'hidden');
      if (Math.abs(to - from) >= 5) onSelect(Math.round(msAt(Math.min(from, to))), Math.round(msAt(Math.max(from, to))));
    });
  }
}

/** Redraws with draw() now and whenever the container's width changes. */
function responsive(container, draw) {
  draw();
  let width = container.clientWidth;
  const ro = new ResizeObserver(() => {
    if (container.clientWidth !== width) {
      width = container.clientWidth;
      draw();
    }
  });
  ro.observe(container);
  return () => ro.disconnect();
}

/**
 * Stacked bars: groups [{name, color, counts: Map(bucketMs -> n)}] over
 * buckets of stepMs from start to end.
 */
export function histogram(container, { start, end, stepMs, groups, onSelect }) {
  const buckets = [];
  for (let t = Math.floor(start / stepMs) * stepMs; t < end; t += stepMs) buckets.push(t);
  const totals = buckets.map((t) => groups.reduce((s, g) => s + (g.counts.get(t) || 0), 0));
  const yMax = Math.max(1, ...totals);
  return responsive(container, () => chartFrame(container, {
    id: 'volume-chart', height: 120, start, end, yMax, onSelect, integer: true,
    draw: ({ root, x, y }) => {
      const bars = svg('g', { class: 'bars' });
      const bw = Math.max(1, x(start + stepMs) - x(start) - 1);
      buckets.forEach((t, i) => {
        if (!totals[i]) return;
        let acc = 0;
        for (const g of groups) {
          const n = g.counts.get(t) || 0;
          if (!n) continue;
          bars.append(svg('rect', { x: x(Math.max(t, start)), width: bw, y: y(acc + n), height: Math.max(1, y(acc) - y(acc + n)), fill: g.color }));
          acc += n;
        }
      });
      root.append(bars);
    },
    hover: (ms) => {
      const t = Math.floor(ms / stepMs) * stepMs;
      const rows = groups.filter((g) => g.counts.get(t)).map((g) => [g.color, `${g.name}: ${formatNumber(g.counts.get(t))}`]);
      return [[null, formatTime(t, false)], ...rows];
    },
  }));
}

/**
 * Lines: series [{name, color, points: [[ms, value], ...]}]. The legend
 * toggles a series on click (shift-click keeps only it).
 */
export function lineChart(container, { start, end, series, onSelect }) {
  const hidden = new Set();
  const plot = h('div', { class: 'plot' });
  const legend = h('div', { class: 'legend', id: 'graph-legend' });
  container.replaceChildren(plot, legend);
  let stop = null;
  const redraw = () => {
    const shown = series.filter((s) => !hidden.has(s.name));
    let yMin = 0;
    let yMax = 0;
    for (const s of shown) {
      for (const [, v] of s.points) {
        if (Number.isFinite(v)) {
          yMax = Math.max(yMax, v);
          yMin = Math.min(yMin, v);
        }
      }
    }
    if (stop) stop();
    stop = responsive(plot, () => chartFrame(plot, {
      id: 'metric-chart', height: 320, start, end, yMin, yMax, onSelect,
      draw: ({ root, x, y }) => {
        for (const s of shown) {
          let d = '';
          let pen = false;
          let prev = null;
          const gap = s.stepMs ? s.stepMs * 1.5 : Infinity;
          for (const [t, v] of s.points) {
            if (!Number.isFinite(v)) {
              pen = false;
              continue;
            }
            const move = !pen || (prev !== null && t - prev > gap);
            d += `${move ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
            pen = true;
            prev = t;
          }
          root.append(svg('path', { d, class: 'series', stroke: s.color, 'data-series': s.name, 'data-points': s.points.length }));
          if (s.points.length <= 60) {
            const dots = svg('g', { fill: s.color, class: 'points' });
            for (const [t, v] of s.points) if (Number.isFinite(v)) dots.append(svg('circle', { cx: x(t), cy: y(v), r: 2.5 }));
            root.append(dots);
          }
        }
      },
      hover: (ms) => {
        const rows = [];
        let at = null;
        for (const s of shown) {
          let best = null;
          for (const p of s.points) if (best === null || Math.abs(p[0] - ms) < Math.abs(best[0] - ms)) best = p;
          if (best) {
            at = best[0];
            rows.push([s.color, `${s.name}: ${formatNumber(best[1])}`]);
          }
        }
        rows.sort((a, b) => parseFloat(b[1].split(': ').pop()) - parseFloat(a[1].split(': ').pop()));
        return at === null ? [] : [[null, formatTime(at, false)], ...rows.slice(0, 12)];
      },
    }));
    legend.replaceChildren(...series.map((s) => h('button', {
      type: 'button',
      class: `legend-item${hidden.has(s.name) ? ' off' : ''}`,
      title: 'Click to hide or show; shift-click to show only this one',
      onclick: (e) => {
        if (e.shiftKey) {
          hidden.clear();
          for (const o of series) if (o !== s) hidden.add(o.name);
        } else if (hidden.has(s.name)) hidden.delete(s.name);
        else hidden.add(s.name);
        redraw();
      },
    }, h('i', { style: { background: s.color } }), s.name)));
  };
  redraw();
  return () => stop && stop();
}
