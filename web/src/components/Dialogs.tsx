// The page's dialogs: the API key prompt (shown on any 401), renaming and deleting a session,
// and the "Phone" panel with the QR code of the server's LAN address (`GET /qr`, fetched with
// the key and shown from a blob URL).

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { deleteSession, renameSession, submitKey } from '../app';
import { dialog, info, keyDialog } from '../state';
import type { Session } from '../types';
import { Dialog } from './Dialog';

export function KeyDialog() {
  const state = keyDialog.value;
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(state.error);
  const [checking, setChecking] = useState(false);

  useEffect(() => setError(state.error), [state.error]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setChecking(true);
    const problem = await submitKey(key);
    setChecking(false);
    setError(problem);
    if (!problem) setKey('');
  };

  return (
    <Dialog id="key-dialog" title="API key needed" testid="key-dialog">
      <form onSubmit={submit} class="dialog-body">
        <p class="dialog-text">
          This chorus server asks for an API key. It is kept in this browser and sent with every request.
        </p>
        <label for="key-input" class="field-label">
          API key
        </label>
        <input
          id="key-input"
          data-testid="key-input"
          type="password"
          autoComplete="current-password"
          class="field"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby={error ? 'key-error' : undefined}
          data-autofocus
        />
        {error && (
          <p id="key-error" class="field-error" data-testid="key-error" role="alert">
            {error}
          </p>
        )}
        <div class="dialog-actions">
          <button type="submit" class="button primary" data-testid="key-submit" disabled={checking}>
            {checking ? 'Checking…' : 'Continue'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function RenameDialog({ session }: { session: Session }) {
  const [title, setTitle] = useState(session.title);
  const close = () => (dialog.value = null);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (await renameSession(session, title)) close();
  };
  return (
    <Dialog id="rename-dialog" title="Rename chat" onClose={close}>
      <form onSubmit={submit} class="dialog-body">
        <label for="rename-input" class="field-label">
          Title
        </label>
        <input
          id="rename-input"
          data-testid="rename-input"
          class="field"
          value={title}
          maxLength={200}
          onInput={(e) => setTitle(e.currentTarget.value)}
          onFocus={(e) => e.currentTarget.select()}
          data-autofocus
        />
        <div class="dialog-actions">
          <button type="button" class="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" class="button primary" data-testid="rename-save">
            Save
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteDialog({ session }: { session: Session }) {
  const close = () => (dialog.value = null);
  const confirm = async () => {
    if (await deleteSession(session)) close();
  };
  return (
    <Dialog id="delete-dialog" title="Delete chat?" onClose={close}>
      <div class="dialog-body">
        <p class="dialog-text">
          “{session.title || 'New chat'}” and all its messages will be deleted. This cannot be undone.
        </p>
        <div class="dialog-actions">
          <button type="button" class="button" onClick={close} data-autofocus>
            Cancel
          </button>
          <button type="button" class="button danger" data-testid="delete-confirm" onClick={confirm}>
            Delete
          </button>
        </div>
      </div>
    </Dialog>
  );
}

function QrDialog() {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const close = () => (dialog.value = null);
  const url = info.value?.url ?? null;

  useEffect(() => {
    let object: string | null = null;
    let live = true;
    api
      .qr()
      .then((blob) => {
        object = URL.createObjectURL(blob);
        if (live) setSrc(object);
      })
      .catch((e: Error) => live && setError(e.message));
    return () => {
      live = false;
      if (object) URL.revokeObjectURL(object);
    };
  }, []);

  return (
    <Dialog id="qr-dialog" title="Open on your phone" onClose={close}>
      <div class="dialog-body qr-body">
        <p class="dialog-text">Scan this code with a phone on the same network to open chorus there.</p>
        <div class="qr-frame">
          {src ? (
            <img data-testid="qr-image" src={src} alt={url ? `QR code of ${url}` : 'QR code of this server'} width={240} height={240} />
          ) : error ? (
            <p class="field-error" role="alert">
              {error}
            </p>
          ) : (
            <p class="dialog-text">Loading…</p>
          )}
        </div>
        {url && <p class="qr-url">{url}</p>}
        <div class="dialog-actions">
          <button type="button" class="button primary" onClick={close} data-autofocus>
            Done
          </button>
        </div>
      </div>
    </Dialog>
  );
}

/** Whichever dialog is open; the key dialog wins over the others. */
export function Dialogs() {
  if (keyDialog.value.open) return <KeyDialog />;
  const d = dialog.value;
  if (!d) return null;
  switch (d.kind) {
    case 'rename':
      return <RenameDialog session={d.session} />;
    case 'delete':
      return <DeleteDialog session={d.session} />;
    case 'qr':
      return <QrDialog />;
  }
}
