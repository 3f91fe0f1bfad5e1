// The top bar: the drawer's hamburger (narrow screens), the open chat's title, the model
// picker (chat models with their load state, and `auto` when the server routes), the "Phone"
// QR button, the theme toggle and a small settings menu (forget the key, server version).

import { useEffect, useRef, useState } from 'preact/hooks';
import { forgetKey, openDialog, pickModel, toggleTheme } from '../app';
import { getKey } from '../api';
import { chatModels, currentSession, info, pickedModel, sidebarOpen, theme } from '../state';
import type { ModelEntry } from '../types';
import { GearIcon, MenuIcon, MoonIcon, PhoneIcon, SunIcon } from './Icons';
import { sessionTitle } from './Sidebar';

const STATUS_LABEL: Record<ModelEntry['status'], string> = {
  unloaded: 'not loaded',
  loading: 'loading…',
  loaded: 'loaded',
  failed: 'failed',
};

function ModelPicker() {
  const list = chatModels.value;
  const value = pickedModel.value;
  const router = info.value?.router === true;
  const known = value === 'auto' || list.some((m) => m.id === value);
  const selected = list.find((m) => m.id === value);
  return (
    <div class="model-picker">
      <label for="model-picker" class="sr-only">
        Model
      </label>
      {selected && <span class={`model-dot ${selected.status}`} aria-hidden="true" />}
      <select
        id="model-picker"
        data-testid="model-picker"
        class="field select"
        value={value}
        onChange={(e) => void pickModel(e.currentTarget.value)}
        title={selected?.last_error ?? undefined}
      >
        {router && <option value="auto">auto (router)</option>}
        {list.map((m) => (
          <option key={m.id} value={m.id}>
            {m.id} — {STATUS_LABEL[m.status]}
          </option>
        ))}
        {!known && value && <option value={value}>{value}</option>}
        {list.length === 0 && !router && !value && <option value="">{info.value ? 'no chat model' : '…'}</option>}
      </select>
    </div>
  );
}

function SettingsMenu() {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!open) return;
    const away = (e: Event) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    const escape = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('pointerdown', away);
    document.addEventListener('keydown', escape);
    return () => {
      document.removeEventListener('pointerdown', away);
      document.removeEventListener('keydown', escape);
    };
  }, [open]);

  const version = info.value?.version;
  return (
    <div class="settings" ref={box}>
      <button
        type="button"
        class="icon-button"
        aria-label="Settings"
        aria-expanded={open ? 'true' : 'false'}
        aria-controls="settings-panel"
        onClick={() => setOpen(!open)}
      >
        <GearIcon />
      </button>
      {open && (
        <div id="settings-panel" class="popover">
          {version && <p class="popover-text">chorus {version}</p>}
          {getKey() ? (
            <button
              type="button"
              class="button wide"
              data-testid="forget-key"
              onClick={() => {
                setOpen(false);
                void forgetKey();
              }}
            >
              Forget API key
            </button>
          ) : (
            <p class="popover-text">No API key stored.</p>
          )}
        </div>
      )}
    </div>
  );
}

export function Header() {
  const dark = theme.value === 'dark';
  return (
    <header class="topbar">
      <button
        type="button"
        class="icon-button sidebar-toggle"
        data-testid="sidebar-toggle"
        aria-label="Show chats"
        aria-controls="sidebar"
        aria-expanded={sidebarOpen.value ? 'true' : 'false'}
        onClick={() => (sidebarOpen.value = !sidebarOpen.value)}
      >
        <MenuIcon />
      </button>
      <h1 class="chat-title">{sessionTitle(currentSession.value)}</h1>
      <ModelPicker />
      <button
        type="button"
        class="icon-button"
        data-testid="qr-button"
        aria-label="Open on a phone (QR code)"
        title="Open on a phone"
        onClick={() => openDialog({ kind: 'qr' })}
      >
        <PhoneIcon />
      </button>
      <button
        type="button"
        class="icon-button"
        data-testid="theme-toggle"
        aria-label={dark ? 'Switch to light theme' : 'Switch to dark theme'}
        title={dark ? 'Light theme' : 'Dark theme'}
        onClick={toggleTheme}
      >
        {dark ? <SunIcon /> : <MoonIcon />}
      </button>
      <SettingsMenu />
    </header>
  );
}
