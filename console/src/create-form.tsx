import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type JsonSchema, type KindForm } from './api';

/**
 * A create form per kind, generated from the kind's request schema (the JSON Schema export of the
 * zod schema that validates the API's creates). The server validates; its message, which starts
 * with the field's name, is shown next to that field, word for word.
 */
type Values = Record<string, string>;

const isImageField = (s: JsonSchema) => s.type === 'string' && /base64/i.test(s.description ?? '');
const isStructured = (s: JsonSchema) => s.type === 'object' || s.type === 'array' || (!s.type && !s.enum);

export function CreateForm({ kindId }: { kindId?: string }) {
  const [kinds, setKinds] = useState<KindForm[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    api<KindForm[]>('GET', '/kinds').then(setKinds, (err: Error) => setError(err.message));
  }, []);
  if (error)
    return (
      <p class="error" role="alert">
        Could not load the task kinds: {error}
      </p>
    );
  if (!kinds) return <p class="loading">Loading…</p>;
  const kind = kinds.find((k) => k.id === kindId) ?? kinds[0];
  return (
    <section aria-labelledby="create-title">
      <h1 id="create-title">New task</h1>
      <nav class="tabs" aria-label="Task kind">
        {kinds.map((k) => (
          <a key={k.id} href={`#/new/${k.id}`} aria-current={k.id === kind.id ? 'page' : undefined}>
            {k.title}
          </a>
        ))}
      </nav>
      <KindFormView key={kind.id} kind={kind} />
    </section>
  );
}

function KindFormView({ kind }: { kind: KindForm }) {
  const props = Object.entries(kind.schema.properties ?? {});
  const required = new Set(kind.schema.required ?? []);
  const [values, setValues] = useState<Values>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState('');
  const [busy, setBusy] = useState(false);
  const set = (name: string, value: string) => setValues((v) => ({ ...v, [name]: value }));

  async function submit(e: Event) {
    e.preventDefault();
    setErrors({});
    setGeneral('');
    const body: Record<string, unknown> = {};
    const local: Record<string, string> = {};
    for (const [name, schema] of props) {
      const raw = values[name];
      if (raw === undefined || raw === '') continue;
      if (schema.type === 'number' || schema.type === 'integer') body[name] = Number(raw);
      else if (schema.type === 'boolean') body[name] = raw === 'true';
      else if (isStructured(schema)) {
        try {
          body[name] = JSON.parse(raw);
        } catch {
          local[name] = `${name}: is not valid JSON`;
        }
      } else body[name] = raw;
    }
    if (Object.keys(local).length) return setErrors(local);
    setBusy(true);
    try {
      const created = await api<{ task_id: string }>('POST', `/kinds/${kind.id}/tasks`, body);
      location.hash = `#/tasks/${encodeURIComponent(created.task_id)}`;
    } catch (err) {
      const message = (err as Error).message;
      // "prompt: must not be blank", "multi_prompt[0].duration: ..." belong to the top-level field named first.
      const field = err instanceof ApiError && err.code === 1201 ? message.split(':')[0].split(/[.[]/)[0] : '';
      if (field && props.some(([name]) => name === field)) {
        setErrors({ [field]: message });
        document.getElementById(`in-${field}`)?.focus();
      } else setGeneral(message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="create" onSubmit={submit} noValidate>
      {kind.schema.description && <p class="hint">{kind.schema.description}</p>}
      {props.map(([name, schema]) => (
        <Field
          key={name}
          name={name}
          schema={schema}
          required={required.has(name)}
          value={values[name] ?? ''}
          error={errors[name]}
          onChange={(v) => set(name, v)}
        />
      ))}
      {general && (
        <p class="error" role="alert">
          {general}
        </p>
      )}
      <button type="submit" disabled={busy}>
        {busy ? 'Creating…' : `Create ${kind.title.toLowerCase()} task`}
      </button>
    </form>
  );
}

interface FieldProps {
  name: string;
  schema: JsonSchema;
  required: boolean;
  value: string;
  error?: string;
  onChange: (value: string) => void;
}

function Field({ name, schema, required, value, error, onChange }: FieldProps) {
  const id = `in-${name}`;
  const describedBy = [schema.description ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  const common = { id, name, 'aria-describedby': describedBy, 'aria-invalid': error ? ('true' as const) : undefined };
  let control;
  if (schema.enum || schema.type === 'boolean') {
    const options = schema.enum ?? [true, false];
    control = (
      <select {...common} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">{schema.default !== undefined ? `default (${String(schema.default)})` : required ? 'choose…' : 'not set'}</option>
        {options.map((o) => (
          <option key={String(o)} value={String(o)}>
            {String(o)}
          </option>
        ))}
      </select>
    );
  } else if (schema.type === 'number' || schema.type === 'integer') {
    control = (
      <input
        {...common}
        type="number"
        step={schema.type === 'integer' ? 1 : 'any'}
        min={schema.minimum}
        max={schema.maximum}
        value={value}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
    );
  } else if (isImageField(schema)) {
    control = <ImageInput common={common} value={value} onChange={onChange} />;
  } else if (isStructured(schema)) {
    control = <textarea {...common} rows={3} placeholder="JSON" value={value} onInput={(e) => onChange(e.currentTarget.value)} />;
  } else if ((schema.maxLength ?? 0) > 300) {
    control = <textarea {...common} rows={3} value={value} onInput={(e) => onChange(e.currentTarget.value)} />;
  } else {
    control = <input {...common} type="text" value={value} onInput={(e) => onChange(e.currentTarget.value)} />;
  }
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>
        {name}
        {required && <span aria-hidden="true"> *</span>}
        {required && <span class="visually-hidden"> (required)</span>}
      </label>
      {control}
      {schema.description && (
        <p id={`${id}-hint`} class="hint">
          {schema.description}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** An image given by URL, or uploaded: sent as bare base64 (no `data:` prefix), as Kling takes it. */
function ImageInput({ common, value, onChange }: { common: Record<string, unknown>; value: string; onChange: (v: string) => void }) {
  const uploaded = value !== '' && !/^https?:\/\//i.test(value);
  const [fileName, setFileName] = useState('');
  function read(file: File | undefined) {
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      setFileName(file.name);
      onChange(String(reader.result).replace(/^data:[^,]*,/, ''));
    };
    reader.readAsDataURL(file);
  }
  return (
    <div class="image-input">
      <input
        {...common}
        type="url"
        placeholder="https://… (or upload a file)"
        value={uploaded ? '' : value}
        onInput={(e) => onChange(e.currentTarget.value)}
      />
      <label class="upload">
        <span>Upload {String(common.name)}</span>
        <input type="file" accept="image/png,image/jpeg" onChange={(e) => read(e.currentTarget.files?.[0])} />
      </label>
      {uploaded && (
        <span class="hint">
          {fileName || 'file'} ({Math.round((value.length * 3) / 4 / 1024)} KB){' '}
          <button type="button" class="link" onClick={() => onChange('')}>
            remove
          </button>
        </span>
      )}
    </div>
  );
}
