// A modal dialog: `role="dialog"` with `aria-modal` and a label, focus moved into it (the
// `data-autofocus` element, else the first field) and kept there with Tab, Escape to close
// (when closable), and focus given back to where it was when it closes. The page behind is made
// inert by `App` while a dialog is open.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

interface Props {
  id: string;
  title: string;
  testid?: string;
  /** Without it the dialog cannot be dismissed (the key dialog). */
  onClose?: () => void;
  children: ComponentChildren;
  wide?: boolean;
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select, textarea, [tabindex="0"]';

export function Dialog({ id, title, testid, onClose, children, wide }: Props) {
  const ref = useRef<HTMLDivElement>(null);
  // Read while rendering: once committed, the page behind is inert and has lost its focus.
  const before = useRef(document.activeElement as HTMLElement | null);

  useEffect(() => {
    const box = ref.current;
    const first = box?.querySelector<HTMLElement>('[data-autofocus]') ?? box?.querySelector<HTMLElement>(FOCUSABLE);
    first?.focus();
    const back = before.current;
    return () => {
      // After the page behind is no longer inert.
      window.setTimeout(() => {
        if (back && document.contains(back)) back.focus();
      }, 0);
    };
  }, []);

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && onClose) {
      e.stopPropagation();
      onClose();
      return;
    }
    if (e.key !== 'Tab' || !ref.current) return;
    const items = Array.from(ref.current.querySelectorAll<HTMLElement>(FOCUSABLE));
    if (items.length === 0) return;
    const first = items[0]!;
    const last = items[items.length - 1]!;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };

  return (
    <div
      class="dialog-backdrop"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose?.();
      }}
    >
      <div
        ref={ref}
        class={wide ? 'dialog dialog-wide' : 'dialog'}
        role="dialog"
        aria-modal="true"
        aria-labelledby={`${id}-title`}
        data-testid={testid}
        onKeyDown={onKeyDown}
      >
        <h2 id={`${id}-title`} class="dialog-title">
          {title}
        </h2>
        {children}
      </div>
    </div>
  );
}
