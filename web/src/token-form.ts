import type { Strings } from './strings.js';

/** The small form that asks for the gateway's access token (shown only when the gateway wants one). */
export class TokenForm {
  constructor(
    private readonly form: HTMLFormElement,
    private readonly input: HTMLInputElement,
    private readonly message: HTMLElement,
    private readonly strings: Strings,
    onToken: (token: string) => void,
  ) {
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (token === '') return;
      input.value = '';
      form.hidden = true;
      onToken(token);
    });
  }

  /** Shows the form with why it is asked for, and puts the cursor in it. */
  ask(refused: boolean): void {
    this.message.textContent = refused ? this.strings.tokenRefused : this.strings.tokenNeeded;
    this.message.classList.toggle('refused', refused);
    this.form.hidden = false;
    this.input.focus();
  }
}
