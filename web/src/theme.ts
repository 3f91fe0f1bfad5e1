// The colour theme: dark by default, light on request; the choice is kept in localStorage
// (`chorus.theme`) and applied as `data-theme` on <html>, with the browser's theme colour.

export type Theme = 'dark' | 'light';

const STORAGE = 'chorus.theme';
const THEME_COLORS: Record<Theme, string> = { dark: '#111318', light: '#ffffff' };

export function storedTheme(): Theme {
  try {
    return localStorage.getItem(STORAGE) === 'light' ? 'light' : 'dark';
  } catch {
    return 'dark';
  }
}

export function applyTheme(theme: Theme, persist = false): void {
  document.documentElement.dataset.theme = theme;
  document.querySelector('meta[name="theme-color"]')?.setAttribute('content', THEME_COLORS[theme]);
  if (!persist) return;
  try {
    localStorage.setItem(STORAGE, theme);
  } catch {
    // Not kept: it still applies to this page.
  }
}
