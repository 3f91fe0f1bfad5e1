// The entry point: the stylesheet, the layout height that follows the visual viewport (so the
// composer stays above an on-screen keyboard where `interactive-widget` is not supported), the
// render, and the controller's start.

import { render } from 'preact';
import './styles.css';
import { start } from './app';
import { App } from './components/App';

function trackViewport(): void {
  const vv = window.visualViewport;
  if (!vv) return;
  const update = () => {
    // Pinch zoom shrinks the visual viewport too; only a keyboard (scale 1) should resize the page.
    if (vv.scale > 1.01) return;
    document.documentElement.style.setProperty('--app-height', `${Math.round(vv.height)}px`);
  };
  vv.addEventListener('resize', update);
  update();
}

trackViewport();
render(<App />, document.getElementById('app')!);
void start();
