//! Writes a seed corpus (valid and slightly broken headers) to `corpus/parse_header/`.

use llamafleet_gguf::Value;
use llamafleet_gguf::writer::GgufWriter;

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new("corpus/parse_header");
    std::fs::create_dir_all(dir)?;
    let mut seeds = vec![
        GgufWriter::tiny_llama(0),
        GgufWriter::tiny_llama(0).kv("general.alignment", Value::U32(64)),
        GgufWriter::tiny_llama(0).kv("tokenizer.chat_template", Value::String("{{ x }}".into())),
        GgufWriter::new(),
    ];
    let mut v2 = GgufWriter::tiny_llama(0);
    v2.version = 2;
    seeds.push(v2);
    for (i, w) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), w.to_bytes())?;
    }
    Ok(())
}
