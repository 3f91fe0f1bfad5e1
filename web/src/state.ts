// The page's state as Preact signals: what the server told (info, models, sessions), the open
// session and its conversation, the transport in use, notices, dialogs and the theme. Only
// `app.ts` writes the server-derived ones; components read them and call `app.ts`'s actions.

import { computed, signal } from '@preact/signals';
import { emptyConversation, isBusy, type Conversation } from './conversation';
import { storedTheme, type Theme } from './theme';
import type { LinkState, TransportKind } from './transport';
import type { Info, ModelEntry, Session } from './types';

export const info = signal<Info | null>(null);
export const models = signal<ModelEntry[]>([]);
export const sessions = signal<Session[]>([]);
export const sessionsLoaded = signal(false);
export const search = signal('');

/** The open session's id (`#/s/ID`); null for the empty "new chat" state. */
export const currentId = signal<string | null>(null);
/** The open session as the server last described it. */
export const currentSession = signal<Session | null>(null);
export const conversation = signal<Conversation>(emptyConversation(null));

export const transport = signal<TransportKind | null>(null);
export const link = signal<LinkState>('connecting');

export interface Notice {
  id: number;
  message: string;
}
export const notices = signal<Notice[]>([]);

/** The key dialog: closed, or open with the server's complaint about the last key. */
export const keyDialog = signal<{ open: boolean; error: string | null }>({ open: false, error: null });

export type DialogState =
  | { kind: 'rename'; session: Session }
  | { kind: 'delete'; session: Session }
  | { kind: 'qr' }
  | null;
export const dialog = signal<DialogState>(null);

export const sidebarOpen = signal(false);
export const theme = signal<Theme>(storedTheme());

/** A "New chat" is being created: sending waits for it. */
export const creating = signal(false);

/** The model picked for a chat not created yet (`auto` or a model id); null: the default. */
export const draftModel = signal<string | null>(null);

/** Models that can chat: the picker's choices. */
export const chatModels = computed(() => models.value.filter((m) => m.capabilities.includes('chat')));

/** The picker's value when the session names no model: `auto` with a router, else the first model. */
export const defaultPick = computed(() => (info.value?.router ? 'auto' : (chatModels.value[0]?.id ?? '')));

export const pickedModel = computed(() => {
  const session = currentSession.value;
  if (session && currentId.value === session.id) return session.model ?? defaultPick.value;
  return draftModel.value ?? defaultPick.value;
});

export const busy = computed(() => isBusy(conversation.value) || currentSession.value?.status === 'busy');
