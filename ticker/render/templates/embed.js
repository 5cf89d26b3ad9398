(()=>{const s=document.currentScript;if(!s)return;const o=new URL(s.src).origin,q=new URLSearchParams();
const C=s.dataset.kind=="chart";for(const k of C?["coin","range","currency","theme","locale","transparent"]:["coins","currency","theme","layout","locale","transparent","sparkline","columns"]){const v=s.dataset[k];if(v)q.set(k,v)}
const f=document.createElement("iframe"),n=(q.get("coins")||"").split(",").filter(Boolean).length||{{ default_count }},l=q.get("layout")||{{ default_layout|tojson }};
f.src=o+(C?"/widget/chart?":"/widget?")+q;const T={{ titles }},L=(q.get("locale")||{{ default_locale|tojson }}).replace(/-/g,"_"),P=L.split("_");
f.title=s.dataset.title||T[L]||T[P[0]+"_"+P[P.length-1]]||T[P[0]+"_"+P[1]]||T[P[0]]||{{ title|tojson }};f.loading="lazy";f.referrerPolicy="no-referrer";f.scrolling="no";
f.style.cssText="border:0;width:100%;display:block;overflow:hidden;height:"+(C?330:l=="ticker"?44:l=="compact"?40+n*26:l=="table"?80+n*38:70+n*46)+"px";
s.after(f);addEventListener("message",e=>{const m=e.data;if(e.origin!==o||e.source!==f.contentWindow||!m||m.type!=="ticker:height")return;
const h=Math.round(+m.height);if(h>=20&&h<=5000)f.style.height=h+"px";
if(!s.dataset.title&&typeof m.title=="string"&&m.title)f.title=m.title.slice(0,200)})})();
