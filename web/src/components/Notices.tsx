// Errors from the server shown in the chat: each with the server's message and a button that
// dismisses it.

import { dismissNotice } from '../app';
import { notices } from '../state';
import { CloseIcon } from './Icons';

export function Notices() {
  const list = notices.value;
  if (list.length === 0) return null;
  return (
    <div class="notices">
      {list.map((n) => (
        <div key={n.id} class="notice" role="alert" data-testid="error-notice">
          <p class="notice-text">{n.message}</p>
          <button type="button" class="icon-button subtle" aria-label="Dismiss this error" onClick={() => dismissNotice(n.id)}>
            <CloseIcon />
          </button>
        </div>
      ))}
    </div>
  );
}
