import { Widget } from '@lumino/widgets';

import { Api } from './api';
import lifecycle from './drawing/lifecycle.js';
import sparklines from './drawing/sparklines.js';
import timeline from './drawing/timeline.js';
import type { DrawingModule } from './drawing/index';
import { LifecycleModel, RestModel, SparklinesModel, TimelineModel } from './models';

const TABS: [string, string][] = [
  ['timeline', 'Timeline'],
  ['lifecycle', 'Lifecycle'],
  ['live', 'Live']
];

/**
 * One model in the main area: its deployment, then the version timeline, the lifecycle graph and the live
 * sparklines, drawn by the widgets' own modules over REST. Each draws when its tab is first shown; the modules
 * poll only while they are on screen, so a hidden tab costs nothing.
 */
export class ModelView extends Widget {
  private cleanups: (() => void)[] = [];
  private hosts = new Map<string, HTMLElement>();
  private drawn = new Set<string>();

  constructor(
    private api: Api,
    readonly model: string
  ) {
    super();
    this.id = `mm-model-${model}`;
    this.title.label = `Model ${model}`;
    this.title.closable = true;
    this.addClass('mm-model-view');
    const status = document.createElement('div');
    status.className = 'mm-view-status';
    status.textContent = `${model}: loading…`;
    const bar = document.createElement('div');
    bar.className = 'mm-view-tabs';
    bar.setAttribute('role', 'tablist');
    this.node.append(status, bar);
    for (const [key, label] of TABS) {
      const tab = document.createElement('button');
      tab.textContent = label;
      tab.setAttribute('role', 'tab');
      tab.dataset.tab = key;
      tab.addEventListener('click', () => void this.showTab(key));
      bar.append(tab);
      const host = document.createElement('div');
      host.className = 'mm-view-panel';
      host.setAttribute('role', 'tabpanel');
      host.hidden = true;
      this.hosts.set(key, host);
      this.node.append(host);
    }
    this.status = status;
    void this.refreshStatus();
    void this.showTab('timeline');
  }

  private status: HTMLElement;

  /** The deployment line over the tabs; again whenever the timeline learns the serving version changed. */
  private async refreshStatus(): Promise<void> {
    const status = this.status;
    try {
      const { deployments } = await this.api.get<{ deployments: any[] }>('deployments');
      const dep = deployments.find(d => d.name === this.model);
      status.textContent = dep
        ? `${this.model} — ${dep.status === 'running' ? '●' : '✗'} ${dep.version} ${dep.status} at ${dep.url}`
        : `${this.model} — not deployed`;
    } catch (err) {
      status.textContent = `✗ ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  async showTab(key: string): Promise<void> {
    for (const [k, host] of this.hosts) {
      host.hidden = k !== key;
    }
    for (const tab of this.node.querySelectorAll<HTMLButtonElement>('.mm-view-tabs button')) {
      tab.setAttribute('aria-selected', String(tab.dataset.tab === key));
    }
    if (this.drawn.has(key)) {
      return;
    }
    this.drawn.add(key);
    const host = this.hosts.get(key)!;
    try {
      const [module, model] = await this.build(key);
      const cleanup = module.render({ model, el: host });
      if (cleanup) {
        this.cleanups.push(cleanup);
      }
    } catch (err) {
      this.drawn.delete(key);
      host.textContent = `✗ ${err instanceof Error ? err.message : String(err)}`;
    }
  }

  private async build(key: string): Promise<[DrawingModule, RestModel]> {
    const name = this.model;
    if (key === 'timeline') {
      const [payload, picture, listing] = await Promise.all([
        this.api.get(`models/${name}/timeline`),
        this.api.get<any>(`models/${name}/lifecycle`),
        this.api.get<{ deployments: any[] }>('deployments')
      ]);
      const dep = listing.deployments.find(d => d.name === name);
      const state = {
        payload,
        stages: picture.stages.map((s: any) => s.name),
        serving: dep ? { version: dep.version, status: dep.status } : {},
        poll_s: 2
      };
      const model = new TimelineModel(this.api, name, state);
      model.on('change:serving', () => void this.refreshStatus());
      return [timeline, model];
    }
    if (key === 'lifecycle') {
      const picture = await this.api.get<any>(`models/${name}/lifecycle`);
      const state = { picture, focus: '', version: '', stage_versions: {}, error: '', poll_s: 2 };
      return [lifecycle, new LifecycleModel(this.api, name, state)];
    }
    const series = await this.api.get<any>(`models/${name}/series`, { window: '5m', step: 5 });
    const { alerts } = await this.api.get<{ alerts: any[] }>(`models/${name}/alerts`);
    const state = {
      series,
      alerts: alerts.map(a => ({ rule: a.rule, message: a.message })),
      state: '',
      live: false,
      poll_s: 5
    };
    return [sparklines, new SparklinesModel(this.api, name, state)];
  }

  dispose(): void {
    for (const cleanup of this.cleanups) {
      cleanup();
    }
    this.cleanups = [];
    super.dispose();
  }
}
