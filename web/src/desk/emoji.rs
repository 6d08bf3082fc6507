//! The emoji picker's catalogue (D6): every fully-qualified emoji of the Unicode version the
//! `emojis` crate carries, in the recommended order, grouped, with its English name and
//! shortcodes, and words an agent types in Portuguese for the ones used most in service.
//! Made once, served as one cacheable JSON document, loaded by the desk when the picker opens.

use std::sync::OnceLock;

use serde::Serialize;

/// One emoji as the picker reads it (short keys: the catalogue is ~1,900 entries).
#[derive(Serialize)]
struct Entry {
    /// The emoji itself.
    e: &'static str,
    /// Its CLDR name, in English.
    n: &'static str,
    /// Its group (`smileys`, `people`, `animals`, `food`, `travel`, `activities`, `objects`,
    /// `symbols`, `flags`).
    g: &'static str,
    /// Other words it is found by: shortcodes, and Portuguese.
    k: Vec<&'static str>,
}

/// Words in Portuguese for the emoji a contact center uses most, so "obrigado" or "coração" finds
/// them in the pt-BR desk (the names above are English).
const PT: &[(&str, &str)] = &[
    ("😀", "sorriso rosto feliz alegre"),
    ("😃", "sorriso feliz alegre"),
    ("😄", "sorriso olhos felizes alegre"),
    ("😁", "sorrisão dentes feliz"),
    ("😆", "rindo risada"),
    ("😅", "suor nervoso ufa alívio"),
    ("🤣", "rolando de rir gargalhada kkk"),
    ("😂", "chorando de rir lágrimas risada kkk"),
    ("🙂", "sorriso leve simpático"),
    ("🙃", "de cabeça para baixo ironia"),
    ("😉", "piscadela piscando"),
    ("😊", "sorriso corado tímido feliz"),
    ("😇", "anjo inocente auréola"),
    ("🥰", "apaixonado corações carinho amor"),
    ("😍", "olhos de coração apaixonado amei"),
    ("🤩", "estrelas encantado uau"),
    ("😘", "beijo mandando beijo"),
    ("😋", "delícia gostoso"),
    ("😎", "óculos escuros legal estiloso"),
    ("🤓", "nerd óculos estudioso"),
    ("🧐", "monóculo analisando"),
    ("🤔", "pensando dúvida hmm"),
    ("🤗", "abraço"),
    ("🤭", "ops mão na boca"),
    ("🤫", "silêncio segredo"),
    ("😐", "neutro sem expressão"),
    ("😑", "sem expressão tédio"),
    ("😶", "sem boca mudo"),
    ("😏", "sorriso de canto malicioso"),
    ("🙄", "revirando os olhos impaciente"),
    ("😬", "careta constrangido"),
    ("😌", "aliviado tranquilo"),
    ("😔", "pensativo triste"),
    ("😪", "sonolento sono"),
    ("😴", "dormindo sono zzz"),
    ("😷", "máscara doente"),
    ("🤒", "febre doente termômetro"),
    ("🤕", "machucado curativo"),
    ("🤯", "cabeça explodindo chocado"),
    ("🥳", "festa comemoração aniversário"),
    ("😕", "confuso"),
    ("😟", "preocupado"),
    ("🙁", "triste"),
    ("☹️", "triste"),
    ("😮", "boca aberta surpreso"),
    ("😲", "espantado surpreso"),
    ("😳", "envergonhado corado"),
    ("🥺", "por favor olhos pidões"),
    ("😢", "chorando lágrima triste"),
    ("😭", "chorando muito aos prantos"),
    ("😱", "grito medo assustado"),
    ("😤", "bufando irritado"),
    ("😡", "bravo raiva furioso"),
    ("😠", "zangado bravo"),
    ("🤬", "palavrões furioso"),
    ("😈", "diabinho travesso"),
    ("💀", "caveira morto"),
    ("💩", "cocô"),
    ("🤡", "palhaço"),
    ("👻", "fantasma"),
    ("🤖", "robô"),
    ("😺", "gato sorrindo"),
    ("❤️", "coração amor vermelho"),
    ("🧡", "coração laranja"),
    ("💛", "coração amarelo"),
    ("💚", "coração verde"),
    ("💙", "coração azul"),
    ("💜", "coração roxo"),
    ("🖤", "coração preto"),
    ("🤍", "coração branco"),
    ("💔", "coração partido"),
    ("💕", "corações amor"),
    ("💖", "coração brilhando"),
    ("💯", "cem pontos perfeito"),
    ("💥", "explosão colisão"),
    ("💬", "balão de fala mensagem conversa"),
    ("👋", "tchau olá oi acenando mão"),
    ("🤚", "mão levantada"),
    ("✋", "mão pare"),
    ("👌", "ok perfeito certo"),
    ("🤌", "dedos juntos"),
    ("✌️", "paz vitória"),
    ("🤞", "dedos cruzados sorte"),
    ("🤟", "te amo"),
    ("🤙", "me liga telefone"),
    ("👈", "apontando esquerda"),
    ("👉", "apontando direita"),
    ("👆", "apontando acima"),
    ("👇", "apontando abaixo"),
    ("☝️", "indicador atenção"),
    ("👍", "joinha positivo curtir ok sim"),
    ("👎", "negativo não curti não"),
    ("✊", "punho força"),
    ("👊", "soco punho"),
    ("👏", "palmas aplausos parabéns"),
    ("🙌", "mãos para o alto comemorar viva"),
    ("👐", "mãos abertas"),
    ("🤝", "aperto de mãos acordo negócio fechado"),
    ("🙏", "obrigado por favor mãos juntas agradecimento rezar"),
    ("✍️", "escrevendo"),
    ("💪", "força músculo forte"),
    ("👀", "olhos olhando vendo"),
    ("🧠", "cérebro ideia"),
    ("🙋", "pessoa levantando a mão pergunta"),
    ("🤷", "sei lá dar de ombros"),
    ("🤦", "facepalm mão na testa"),
    ("🙇", "reverência desculpas"),
    ("💁", "atendente informação"),
    ("🎉", "festa parabéns comemoração confete"),
    ("🎊", "confete festa"),
    ("🎁", "presente"),
    ("🎂", "bolo aniversário"),
    ("🎈", "balão festa"),
    ("🏆", "troféu campeão"),
    ("⭐", "estrela"),
    ("🌟", "estrela brilhante"),
    ("✨", "brilhos novidade"),
    ("🔥", "fogo quente top"),
    ("☀️", "sol dia"),
    ("🌙", "lua noite"),
    ("🌧️", "chuva"),
    ("⛈️", "tempestade"),
    ("❄️", "neve frio"),
    ("🌈", "arco-íris"),
    ("🌹", "rosa flor"),
    ("🌻", "girassol flor"),
    ("🍀", "trevo sorte"),
    ("☕", "café"),
    ("🍕", "pizza"),
    ("🍔", "hambúrguer lanche"),
    ("🍺", "cerveja"),
    ("🍷", "vinho"),
    ("🍰", "bolo doce"),
    ("🚗", "carro"),
    ("🚚", "caminhão entrega frete"),
    ("✈️", "avião viagem"),
    ("🏠", "casa"),
    ("🏢", "prédio escritório empresa"),
    ("🏦", "banco"),
    ("🏥", "hospital"),
    ("⏰", "despertador alarme horário"),
    ("⌛", "ampulheta tempo esperando"),
    ("⏳", "ampulheta aguarde carregando"),
    ("📅", "calendário data agenda"),
    ("📆", "calendário agenda"),
    ("📞", "telefone ligação"),
    ("☎️", "telefone"),
    ("📱", "celular smartphone"),
    ("💻", "computador notebook"),
    ("🖥️", "computador monitor"),
    ("🖨️", "impressora"),
    ("📧", "email e-mail"),
    ("✉️", "envelope carta e-mail"),
    ("📩", "e-mail recebido envelope"),
    ("📨", "mensagem recebida"),
    ("📦", "pacote caixa encomenda entrega pedido"),
    ("📝", "anotação nota formulário"),
    ("📄", "documento página"),
    ("📎", "clipe anexo"),
    ("📌", "alfinete fixar"),
    ("📍", "local localização endereço"),
    ("🔍", "lupa busca pesquisar"),
    ("🔒", "cadeado seguro bloqueado"),
    ("🔓", "cadeado aberto desbloqueado"),
    ("🔑", "chave senha"),
    ("💰", "dinheiro saco de dinheiro"),
    ("💵", "dinheiro nota dólar"),
    ("💳", "cartão de crédito pagamento"),
    ("🧾", "recibo nota fiscal boleto"),
    ("🛒", "carrinho de compras"),
    ("🛍️", "sacolas compras"),
    ("🔧", "chave inglesa ferramenta conserto"),
    ("🛠️", "ferramentas manutenção"),
    ("⚙️", "engrenagem configuração"),
    ("💡", "lâmpada ideia"),
    ("🔔", "sino notificação"),
    ("📢", "alto-falante aviso anúncio"),
    ("⚠️", "atenção aviso alerta cuidado"),
    ("🚫", "proibido"),
    ("⛔", "entrada proibida"),
    ("❌", "x errado cancelado não"),
    ("❎", "x cancelar"),
    ("✅", "certo feito concluído sim verificado"),
    ("✔️", "certo marcado"),
    ("☑️", "caixa marcada"),
    ("❓", "pergunta interrogação dúvida"),
    ("❗", "exclamação importante"),
    ("‼️", "dupla exclamação urgente"),
    ("➡️", "seta direita próximo"),
    ("⬅️", "seta esquerda voltar"),
    ("⬆️", "seta para cima"),
    ("⬇️", "seta para baixo"),
    ("🔄", "atualizar recarregar"),
    ("🆗", "ok"),
    ("🆕", "novo"),
    ("🆓", "grátis"),
    ("🇧🇷", "brasil bandeira"),
    ("🇵🇹", "portugal bandeira"),
];

fn group_word(group: emojis::Group) -> &'static str {
    use emojis::Group;
    match group {
        Group::SmileysAndEmotion => "smileys",
        Group::PeopleAndBody => "people",
        Group::AnimalsAndNature => "animals",
        Group::FoodAndDrink => "food",
        Group::TravelAndPlaces => "travel",
        Group::Activities => "activities",
        Group::Objects => "objects",
        Group::Symbols => "symbols",
        Group::Flags => "flags",
    }
}

/// The catalogue as JSON, made on first use.
pub fn catalogue() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| {
        let entries: Vec<Entry> = emojis::iter()
            .map(|e| {
                let mut k: Vec<&'static str> = e.shortcodes().collect();
                if let Some((_, words)) = PT.iter().find(|(glyph, _)| *glyph == e.as_str()) {
                    k.push(words);
                }
                Entry { e: e.as_str(), n: e.name(), g: group_word(e.group()), k }
            })
            .collect();
        serde_json::to_vec(&entries).unwrap_or_else(|_| b"[]".to_vec())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_holds_the_full_set_with_portuguese_words() {
        let all: Vec<serde_json::Value> = serde_json::from_slice(catalogue()).unwrap();
        assert!(all.len() > 1_500, "the full set, not a handful: {}", all.len());
        let thanks = all.iter().find(|e| e["e"] == "🙏").unwrap();
        assert!(thanks["k"].to_string().contains("obrigado"), "{thanks}");
        assert!(all.iter().any(|e| e["g"] == "flags"));
        // Every Portuguese entry names an emoji of the catalogue (a typo would find nothing).
        for (glyph, _) in PT {
            assert!(all.iter().any(|e| e["e"] == *glyph), "{glyph} is not in the catalogue");
        }
    }
}
