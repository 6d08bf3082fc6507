// Sign-in form (D1).
import { h } from '../dom.js';
import { t, getLang } from '../i18n.js';
import { api, ApiError } from '../api.js';
import { unlockAudio } from '../sound.js';
import { langSelect } from './common.js';

export function renderLogin({ onSignedIn, changeLang }) {
  const login = h('input', {
    id: 'login', name: 'login', type: 'text', autocomplete: 'username', required: true, testid: 'login-input',
  });
  const password = h('input', {
    id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
    testid: 'password-input',
  });
  const error = h('p', { class: 'login-error', role: 'alert', testid: 'login-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block', testid: 'login-submit' }, t('login.submit'));
  let countdown = null;

  const showError = (text) => {
    error.textContent = text;
    error.hidden = false;
  };

  const form = h(
    'form',
    {
      class: 'login-card', testid: 'login-form', novalidate: true,
      on: {
        submit: async (ev) => {
          ev.preventDefault();
          unlockAudio();
          if (!login.value.trim() || !password.value) {
            showError(t('login.invalid'));
            return;
          }
          submit.disabled = true;
          submit.textContent = t('login.busy');
          error.hidden = true;
          try {
            await api.login(login.value.trim(), password.value);
            const { data } = await api.me();
            await onSignedIn(data);
          } catch (e) {
            password.value = '';
            if (e instanceof ApiError && e.status === 401) showError(t('login.invalid'));
            else if (e instanceof ApiError && e.status === 429) {
              let left = e.retryAfter || Number((/(\d+)\s*s/.exec(e.message) || [])[1]) || 60;
              showError(t('login.throttled', { s: left }));
              clearInterval(countdown);
              countdown = setInterval(() => {
                left -= 1;
                if (left <= 0 || !error.isConnected) {
                  clearInterval(countdown);
                  if (error.isConnected) error.hidden = true;
                  return;
                }
                error.textContent = t('login.throttled', { s: left });
              }, 1000);
            } else if (e instanceof ApiError && e.status === 0) showError(t('err.network'));
            else showError(t('login.failed', { m: e.message || String(e) }));
            if (error.isConnected) {
              submit.disabled = false;
              submit.textContent = t('login.submit');
              password.focus();
            }
          }
        },
      },
    },
    h('div', { class: 'brand brand-login' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, 'O'), t('app.title')),
    h('h1', {}, t('login.title')),
    h('p', { class: 'muted' }, t('login.subtitle')),
    h('label', { for: 'login' }, t('login.login')),
    login,
    h('label', { for: 'password' }, t('login.password')),
    password,
    error,
    submit,
    h('div', { class: 'login-foot' }, langSelect(getLang(), changeLang)),
  );
  setTimeout(() => login.focus(), 0);
  return h('div', { class: 'login-page' }, form);
}
