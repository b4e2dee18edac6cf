import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget } from '@jupyterlab/apputils';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { Api } from './api';
import { ModelRow, ModelsPanel } from './panel';
import { ModelView } from './view';

const ICON = new LabIcon({
  name: 'mm-magics:models',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<circle cx="5" cy="6" r="2.5"/><circle cx="5" cy="18" r="2.5"/><circle cx="19" cy="12" r="2.5"/>' +
    '<path d="M7 6.5h4l5 4.5M7 17.5h4l5-4.5" stroke="#616161" stroke-width="1.5" fill="none"/></g></svg>'
});

const COMMANDS = {
  panel: 'mm:open-models-panel',
  model: 'mm:open-model',
  refresh: 'mm:refresh-models'
};

/** The status-bar item: shown only when a deployment is unhealthy or an alert is open. */
class StatusItem extends Widget {
  constructor() {
    super();
    this.addClass('mm-status');
  }

  showRows(rows: ModelRow[]): void {
    const unhealthy = rows.filter(r => r.serving && r.serving_status !== 'running');
    const alerts = rows.reduce((n, r) => n + (r.open_alerts || 0), 0);
    const parts = [];
    if (unhealthy.length) {
      parts.push(`✗ ${unhealthy.map(r => r.name).join(', ')} unhealthy`);
    }
    if (alerts) {
      parts.push(`⚠ ${alerts} alert${alerts > 1 ? 's' : ''}`);
    }
    this.node.textContent = parts.length ? `mm: ${parts.join(' · ')}` : '';
    this.node.title = 'mm_magics: open the Models panel';
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mm-magics:models',
  description:
    'A Models side panel over the mm_magics engine: versions, lifecycle, deployments, live metrics.',
  autoStart: true,
  requires: [ILabShell],
  optional: [ICommandPalette, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null
  ) => {
    const api = new Api();
    const views = new Map<string, MainAreaWidget<ModelView>>();
    const open = (name: string) => {
      const known = views.get(name);
      const view =
        known && !known.isDisposed
          ? known
          : new MainAreaWidget<ModelView>({ content: new ModelView(api, name) });
      if (view !== known) {
        view.id = `mm-model-view-${name}`;
        view.title.label = `Model ${name}`;
        view.title.icon = ICON;
        views.set(name, view);
        shell.add(view, 'main');
      }
      shell.activateById(view.id);
    };
    const panel = new ModelsPanel(api, open);
    panel.title.icon = ICON;
    shell.add(panel, 'left', { rank: 650 });

    app.commands.addCommand(COMMANDS.panel, {
      label: 'Models: Show the Models Panel',
      execute: () => shell.activateById(panel.id)
    });
    app.commands.addCommand(COMMANDS.model, {
      label: args => (args.name ? `Models: Open ${args.name}` : 'Models: Open a Model…'),
      execute: async args => {
        let name = args.name as string | undefined;
        if (!name) {
          const choice = await InputDialog.getItem({
            title: 'Open a model',
            items: panel.models.map(m => m.name)
          });
          name = choice.value ?? undefined;
        }
        if (name) {
          open(name);
        }
      }
    });
    app.commands.addCommand(COMMANDS.refresh, {
      label: 'Models: Refresh',
      execute: () => panel.poll(true)
    });
    for (const command of Object.values(COMMANDS)) {
      palette?.addItem({ command, category: 'Models' });
    }
    if (statusBar) {
      const item = new StatusItem();
      panel.changed.add(rows => item.showRows(rows));
      statusBar.registerStatusItem('mm-magics:status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => item.node.textContent !== ''
      });
      item.node.addEventListener('click', () => shell.activateById(panel.id));
    }
  }
};

export default plugin;
