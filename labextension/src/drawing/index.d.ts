// Types of the widgets' drawing modules (mm_magics/widgets/static/*.js, copied into lib/drawing at build).
export interface DrawingModel {
  get(name: string): any;
  set(name: string, value: any): void;
  save_changes(): void;
  send(content: any): void;
  on(event: string, callback: (...args: any[]) => void): void;
  off(event: string, callback?: (...args: any[]) => void): void;
}

export interface DrawingModule {
  render(props: { model: DrawingModel; el: HTMLElement }): void | (() => void);
}
