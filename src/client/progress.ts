/** One status line on stderr: a spinner on a terminal, one line per change otherwise. */
const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

export class Progress {
  private timer?: ReturnType<typeof setInterval>;
  private text = "";
  private frame = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  update(text: string): void {
    if (text === this.text) return;
    this.text = text;
    if (!this.tty) {
      process.stderr.write(`${text}\n`);
      return;
    }
    this.draw();
    this.timer ??= setInterval(() => this.draw(), 100);
  }

  done(text: string): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty && this.text) process.stderr.write("\r\x1b[2K");
    this.text = "";
    process.stderr.write(`${text}\n`);
  }

  /** Prints a line above the status line, which stays (a hook's output while we wait). */
  note(text: string): void {
    if (this.tty && this.text) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`${text}\n`);
    if (this.tty && this.text) this.draw();
  }

  /** Removes the status line, if one is showing, and prints nothing else. */
  clear(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty && this.text) process.stderr.write("\r\x1b[2K");
    this.text = "";
  }

  private draw(): void {
    process.stderr.write(`\r\x1b[2K${FRAMES[this.frame++ % FRAMES.length]} ${this.text}`);
  }
}
