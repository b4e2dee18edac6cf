import { Widget } from '@lumino/widgets';

import { Api, ApiError } from './api';
import { VERSION } from './version';

/** One model as the list shows it (the engine's ModelSummary). */
export interface ModelRow {
  name: string;
  latest: number;
  aliases: Record<string, number>;
  stages: Record<string, number>;
  serving: string | null;
  serving_status: string | null;
  open_alerts: number;
}

const ROW_H = 46;
const OVERSCAN = 6;
/** How often a visible panel asks whether anything changed (a 304 costs the server one ref read). */
const POLL_MS = 1000;

/**
 * The "Models" side panel: every model of the workspace with its latest version, aliases, versions per stage and
 * deployment health, in a virtualised list (only the rows in view exist, so 1 000 models scroll like 10). While
 * it is visible it asks `/mm/api/head` with the last ETag every second and reloads only when the answer changed;
 * hidden, it asks nothing.
 */
export class ModelsPanel extends Widget {
  private rows: ModelRow[] = [];
  private shown: ModelRow[] = [];
  private etag = '';
  private timer = 0;
  private busy = false;
  private header: HTMLElement;
  private picker: HTMLSelectElement;
  private filter: HTMLInputElement;
  private scroller: HTMLElement;
  private spacer: HTMLElement;
  private list: HTMLElement;
  private message: HTMLElement;
  readonly changed = new Set<(rows: ModelRow[]) => void>();

  constructor(
    private api: Api,
    private open: (name: string) => void
  ) {
    super();
    this.id = 'mm-models-panel';
    this.title.caption = 'Models';
    this.addClass('mm-models');
    this.header = document.createElement('div');
    this.header.className = 'mm-models-where';
    this.picker = document.createElement('select');
    this.picker.setAttribute('aria-label', 'workspace');
    this.picker.addEventListener('change', () => {
      this.api.workspace = this.picker.value;
      this.etag = '';
      void this.poll(true);
    });
    this.filter = document.createElement('input');
    this.filter.type = 'search';
    this.filter.placeholder = 'filter models';
    this.filter.setAttribute('aria-label', 'filter models');
    this.filter.addEventListener('input', () => this.apply());
    this.message = document.createElement('div');
    this.message.className = 'mm-models-message';
    this.message.setAttribute('role', 'status');
    this.scroller = document.createElement('div');
    this.scroller.className = 'mm-models-scroller';
    this.spacer = document.createElement('div');
    this.list = document.createElement('div');
    this.list.className = 'mm-models-list';
    this.list.setAttribute('role', 'list');
    this.scroller.append(this.spacer, this.list);
    this.scroller.addEventListener('scroll', () => this.paint());
    const title = document.createElement('h2');
    title.textContent = 'Models';
    this.node.append(title, this.header, this.picker, this.filter, this.message, this.scroller);
  }

  get models(): ModelRow[] {
    return this.rows;
  }

  protected onAfterAttach(): void {
    void this.start();
    this.timer = window.setInterval(() => void this.poll(false), POLL_MS);
  }

  protected onBeforeDetach(): void {
    window.clearInterval(this.timer);
  }

  protected onAfterShow(): void {
    void this.poll(false);
    this.paint();
  }

  protected onResize(): void {
    this.paint();
  }

  private async start(): Promise<void> {
    try {
      await this.api.get('version', { client: VERSION });
      const spaces = await this.api.get<{ root: string; default: string | null; found: string[] }>(
        'workspaces'
      );
      this.header.textContent = `workspace: ${spaces.default ?? 'none found'}`;
      this.header.title = `server root: ${spaces.root}`;
      this.picker.replaceChildren(new Option('default (MM_HOME or the nearest .mm)', ''));
      for (const found of spaces.found) {
        this.picker.append(new Option(found === '.' ? '. (the server root)' : found, found));
      }
      this.picker.hidden = spaces.found.length < 2;
      await this.poll(true);
    } catch (err) {
      this.say(err);
    }
  }

  /** Reload when the workspace moved since the last answer (or `force`); nothing while hidden or busy. */
  async poll(force: boolean): Promise<void> {
    if (this.busy || (!force && (!this.isVisible || document.hidden))) {
      return;
    }
    this.busy = true;
    try {
      const moved = await this.api.changed(force ? '' : this.etag);
      if (moved !== null) {
        this.etag = moved;
        const answer = await this.api.get<{ models: ModelRow[] }>('models');
        this.rows = answer.models;
        this.message.textContent = this.rows.length
          ? ''
          : 'No models yet: train one in a notebook (%%mm_train NAME) and commit it (%mm_commit NAME -m WHY).';
        this.apply();
        for (const listener of this.changed) {
          listener(this.rows);
        }
      }
    } catch (err) {
      this.say(err);
    } finally {
      this.busy = false;
    }
  }

  private say(err: unknown): void {
    const text = err instanceof ApiError || err instanceof Error ? err.message : String(err);
    this.message.textContent = `✗ ${text}`;
  }

  private apply(): void {
    const needle = this.filter.value.trim().toLowerCase();
    this.shown = needle ? this.rows.filter(r => r.name.toLowerCase().includes(needle)) : this.rows;
    this.spacer.style.height = `${this.shown.length * ROW_H}px`;
    this.node.dataset.models = String(this.rows.length);
    this.paint();
  }

  /** Draw only the rows in view (and a few around them). */
  private paint(): void {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.shown.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    this.list.style.transform = `translateY(${first * ROW_H}px)`;
    this.list.replaceChildren(...this.shown.slice(first, last).map(row => this.row(row)));
    this.node.dataset.drawnAt = String(Date.now());
  }

  private row(m: ModelRow): HTMLElement {
    const item = document.createElement('div');
    item.className = 'mm-models-row';
    item.setAttribute('role', 'listitem');
    item.tabIndex = 0;
    item.dataset.model = m.name;
    const aliases = Object.entries(m.aliases)
      .map(([a, n]) => `@${a}=v${n}`)
      .join(' ');
    const stages = Object.entries(m.stages)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${s} ${n}`)
      .join(' · ');
    const name = document.createElement('div');
    name.className = 'mm-models-name';
    name.textContent = `${m.name}  v${m.latest}${aliases ? `  ${aliases}` : ''}`;
    const detail = document.createElement('div');
    detail.className = 'mm-models-detail';
    const health = m.serving
      ? m.serving_status === 'running'
        ? `● ${m.serving.split('@')[1]} running`
        : `✗ ${m.serving.split('@')[1]} ${m.serving_status}`
      : 'not deployed';
    const alerts = m.open_alerts
      ? ` · ⚠ ${m.open_alerts} alert${m.open_alerts > 1 ? 's' : ''}`
      : '';
    detail.textContent = `${health}${alerts} · ${stages}`; // health first: a narrow panel cuts the end
    if ((m.serving && m.serving_status !== 'running') || m.open_alerts) {
      detail.classList.add('mm-warn');
    }
    item.append(name, detail);
    item.title = `open ${m.name}: timeline, lifecycle, live metrics`;
    item.addEventListener('click', () => this.open(m.name));
    item.addEventListener('keydown', ev => {
      if (ev.key === 'Enter') {
        this.open(m.name);
      }
    });
    return item;
  }
}
