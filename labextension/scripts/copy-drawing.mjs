// The Models panel draws with the widgets' own ES modules and stylesheets (mm_magics/widgets/static): one drawing
// module, two hosts. This copies them into the build (lib/drawing, style/drawing) before webpack bundles it; the
// types the TypeScript sees are in src/drawing/*.d.ts.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const source = join(here, '..', '..', 'mm_magics', 'widgets', 'static');
for (const [ext, target] of [['.js', join(here, '..', 'lib', 'drawing')], ['.css', join(here, '..', 'style', 'drawing')]]) {
  mkdirSync(target, { recursive: true });
  for (const name of readdirSync(source).filter(n => n.endsWith(ext))) {
    copyFileSync(join(source, name), join(target, name));
  }
}
