// The page's layout: the sessions sidebar (a drawer on phones), and a column with the header,
// the conversation and the composer; dialogs above it all, with the rest made inert meanwhile.

import { useEffect } from 'preact/hooks';
import { dialog, keyDialog, sidebarOpen } from '../state';
import { Composer } from './Composer';
import { Dialogs } from './Dialogs';
import { Header } from './Header';
import { MessageList } from './MessageList';
import { Notices } from './Notices';
import { Sidebar } from './Sidebar';

export function App() {
  const modal = keyDialog.value.open || dialog.value !== null;
  const drawer = sidebarOpen.value;

  // Escape closes the drawer.
  useEffect(() => {
    if (!drawer) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') sidebarOpen.value = false;
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [drawer]);

  return (
    <>
      <div class={drawer ? 'shell drawer-open' : 'shell'} inert={modal}>
        <Sidebar />
        {drawer && <div class="scrim" onClick={() => (sidebarOpen.value = false)} />}
        <div class="column">
          <Header />
          <main class="chat">
            <MessageList />
            <Notices />
            <Composer />
          </main>
        </div>
      </div>
      <Dialogs />
    </>
  );
}
