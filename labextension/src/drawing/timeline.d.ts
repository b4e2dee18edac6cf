import { DrawingModule } from './index';
declare const drawing: DrawingModule;
export default drawing;
