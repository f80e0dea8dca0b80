// The page: a router over four views (Explore, Labels & streams,
// Patterns, Errors), the shared time range, the tenant/token settings and
// the banner shown when the server refuses a request (401/403).
//
// The URL is the state: `explore?query=...&from=now-1h&to=now`, so the
// back button, a reload and a shared link all show the same view. Paths
// are relative to the page (routes are one segment deep), so the UI also
// works behind a reverse proxy under a path prefix.

import { h } from './dom.js';
import { onAuthError } from './api.js';
import { openSettings, tenant, token } from './settings.js';
import { TimePicker } from './timerange.js';
import { Explore } from './explore.js';
import { Labels } from './labels.js';
import { patternsView, errorsView } from './analysis.js';

const ROUTES = ['explore', 'labels', 'patterns', 'errors'];

class App {
  constructor() {
    this.viewRoot = document.getElementById('view');
    this.banner = document.getElementById('banner');
    this.picker = new TimePicker(document.getElementById('timepicker'), () => {
      this.updateURL(true);
      this.current.load(this.paramsForView());
    });
    this.views = {
      explore: new Explore(this),
      labels: new Labels(this),
      patterns: patternsView(this),
      errors: errorsView(this),
    };
    this.current = null;
    document.getElementById('settings-button').addEventListener('click', () => this.settings());
    document.addEventListener('click', (e) => {
      const a = e.target.closest('a[data-route]');
      if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      this.navigate(a.dataset.route, {});
    });
    window.addEventListener('popstate', () => this.route());
    onAuthError((err) => this.showBanner(err));
    this.showTenant();
    this.route();
  }

  range() {
    return this.picker.range;
  }

  /** A new range from a zoom (ms) or the picker; reruns the view. */
  setRange(range) {
    this.picker.set(range);
    this.updateURL(true);
    this.current.load(this.paramsForView());
  }

  /** The current URL's parameters, with the picker's range. */
  paramsForView() {
    const params = new URLSearchParams(location.search);
    params.set('from', this.picker.range.from);
    params.set('to', this.picker.range.to);
    return params;
  }

  viewName() {
    const last = location.pathname.split('/').pop();
    return ROUTES.includes(last) ? last : 'explore';
  }

  /** Shows the view of the URL. */
  route() {
    const params = new URLSearchParams(location.search);
    this.picker.set({ from: params.get('from') || 'now-1h', to: params.get('to') || 'now' });
    const name = this.viewName();
    const view = this.views[name];
    if (this.current && this.current !== view) this.current.leave();
    this.current = view;
    this.hideBanner();
    for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.route === `/${name}`);
    document.title = `Skald · ${name[0].toUpperCase()}${name.slice(1)}`;
    this.viewRoot.replaceChildren(view.root);
    view.load(params);
  }

  /** Goes to a view with parameters (keeping the time range). */
  navigate(route, extra) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    params.set('from', this.picker.range.from);
    params.set('to', this.picker.range.to);
    history.pushState(null, '', `${route.slice(1)}?${params}`);
    this.route();
  }

  /** Writes the current view's state to the URL. */
  updateURL(push) {
    const params = new URLSearchParams(location.search);
    this.current.writeURL(params);
    params.set('from', this.picker.range.from);
    params.set('to', this.picker.range.to);
    const url = `${this.viewName()}?${params}`;
    if (`${location.pathname.split('/').pop()}${location.search}` === url) return;
    if (push) history.pushState(null, '', url);
    else history.replaceState(null, '', url);
  }

  showTenant() {
    document.getElementById('tenant-name').textContent = `${tenant() || 'default'}${token() ? ' · token' : ''}`;
  }

  settings(reason) {
    openSettings(() => {
      this.showTenant();
      this.hideBanner();
      this.current.load(this.paramsForView());
    }, reason);
  }

  showBanner(err) {
    const what = err.status === 401
      ? 'The server asks for credentials (401).'
      : 'The server refused access for this tenant or token (403).';
    this.banner.replaceChildren(
      h('span', {}, `${what} ${err.message}`),
      h('button', { type: 'button', class: 'primary', onclick: () => this.settings(what) }, 'Set tenant and token'));
    this.banner.hidden = false;
  }

  hideBanner() {
    this.banner.hidden = true;
  }
}

new App();
