import type { DType } from '../native/binding';
import type { AdapterInfo, LoraOptions } from './lora';
import type { ScriptModule } from './script-module';

export interface ArchitectureBuild {
  init: boolean;
  dtype?: DType;
  device?: string;
  lora?: LoraOptions | null;
}

/** What the registry knows about a built-in architecture. */
export interface Architecture {
  /** HF's class, written as config.json's `architectures` (e.g. 'Qwen3ForCausalLM'). */
  className: string;
  /**
   * Builds the module from an HF config.json (missing keys take HF's defaults); `init: false` leaves
   * the weights uninitialised in `dtype` on `device` because a checkpoint is about to fill them;
   * `lora` adds adapters to the targeted linear layers (initialised in any case).
   */
  create(config: unknown, options: ArchitectureBuild): Promise<{ module: ScriptModule; config: object; adapters: AdapterInfo | null }>;
  /** Where the layers are (`<prefix>.<i>`, forward(x, …the rest of prepare_layers' outputs)). */
  layers(config: object): { prefix: string; count: number };
  /** The longest sequence the model takes (learned positions or max_position_embeddings). */
  maxPositions(config: object): number;
}
