"""Generate the shipped sample: synthetic university notices in Chinese.

Run: llmops data sample  (rewrites data/raw/notices.jsonl; the output is deterministic)

Every notice has an id, category, title, department, publish date, body, and the facts a
reader looks for: a deadline and/or a location, both stated in the body. Departments only
partly follow the category and several kinds of notice share vocabulary (报名, 讲座, 申请),
so a model has to read the body to classify it.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.commands import command
from pipeline.data.schema import CATEGORIES
from pipeline.io import run_stage, write_jsonl
from pipeline.paths import PREFS_FILE, RAW_HELPDESK, RAW_NOTICES

SCHOOLS = (
    "计算机学院",
    "数学科学学院",
    "物理学院",
    "化学学院",
    "经济管理学院",
    "外国语学院",
    "法学院",
    "生命科学学院",
    "机械工程学院",
    "新闻传播学院",
    "环境学院",
    "艺术学院",
)
BUILDINGS = ("第一教学楼", "第二教学楼", "第三教学楼", "理科楼", "文科楼", "综合楼", "实验楼")
HALLS = (
    "图书馆一楼报告厅",
    "图书馆三楼学术报告厅",
    "学生活动中心多功能厅",
    "大礼堂",
    "国际会议中心",
    "逸夫楼报告厅",
    "体育馆",
    "田径场",
    "学术交流中心第一会议室",
    "校史馆",
)
OFFICES = ("行政楼", "综合服务大厅", "学生事务中心", "科技楼", "就业指导中心")
DORMS = (
    "学生公寓1号楼",
    "学生公寓3号楼",
    "学生公寓5号楼",
    "学生公寓8号楼",
    "研究生公寓A座",
    "研究生公寓B座",
    "留学生公寓",
    "教工宿舍区",
)
CANTEENS = ("第一食堂", "第二食堂", "清真食堂", "学苑餐厅", "教工餐厅")
SUBJECTS = (
    "高等数学",
    "大学英语",
    "线性代数",
    "概率论与数理统计",
    "大学物理",
    "程序设计基础",
    "中国近现代史纲要",
    "数据结构",
    "有机化学",
    "微观经济学",
)
SPEAKERS = (
    "张明远教授",
    "李思齐研究员",
    "王晓燕教授",
    "陈立新博士",
    "刘卫东院士",
    "赵一鸣教授",
    "孙雨桐副教授",
    "周国平教授",
    "吴晨曦研究员",
    "郑可欣博士",
)
TOPICS = (
    "大语言模型的可解释性",
    "量子计算前沿进展",
    "碳中和与能源转型",
    "数字经济与平台治理",
    "单细胞测序技术",
    "中国古典诗词的现代阅读",
    "新材料与先进制造",
    "全球气候变化与城市韧性",
    "人工智能伦理",
    "科技论文写作方法",
)
COMPANIES = (
    "华辰科技",
    "中科智联",
    "蓝海证券",
    "国信建设集团",
    "星河网络",
    "东方制药",
    "远景新能源",
    "长风汽车",
    "中原银行",
    "云帆教育",
)
WEEKDAYS = "一二三四五六日"


@dataclass
class Facts:
    """Slot values drawn once per notice; templates read what they need."""

    rng: random.Random
    publish: dt.date
    deadline: str
    event: str
    location: str
    school: str
    subject: str
    speaker: str
    topic: str
    company: str
    year: int
    term: str


def cn_date(d: dt.date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def event_time(d: dt.date, rng: random.Random) -> str:
    hour = rng.choice((9, 10, 14, 15, 16, 19))
    return f"{d.month}月{d.day}日（周{WEEKDAYS[d.weekday()]}）{hour}:{rng.choice(('00', '30'))}"


def room(rng: random.Random) -> str:
    return f"{rng.choice(BUILDINGS)}{rng.choice('ABCD')}{rng.randint(1, 5)}{rng.randint(1, 20):02d}"


def office(rng: random.Random) -> str:
    return f"{rng.choice(OFFICES)}{rng.randint(1, 6)}{rng.randint(1, 30):02d}室"


@dataclass(frozen=True)
class Kind:
    """One kind of notice: who issues it, how its title and body read, which facts it states."""

    category: str
    departments: tuple[str, ...]
    titles: tuple[str, ...]
    bodies: tuple[str, ...]
    place: Callable[[random.Random], str]
    has_deadline: bool = True
    has_location: bool = True


def _k(category, departments, titles, bodies, place, deadline=True, location=True) -> Kind:
    return Kind(
        category, tuple(departments), tuple(titles), tuple(bodies), place, deadline, location
    )


KINDS: tuple[Kind, ...] = (
    # 教务
    _k(
        "教务",
        ["教务处", "本科生院"],
        ["关于{year}年{term}学期本科生选课的通知", "{term}学期选课安排"],
        [
            "{year}年{term}学期选课工作即将开始。请各位同学登录教务系统查看课表并完成选课，选课截止时间为{deadline}。"
            "选课遇到问题可到{location}咨询。",
            "本学期第二轮选课将于近日开放，未选满学分的同学请于{deadline}前完成补选，"
            "教务咨询点设在{location}。",
        ],
        office,
    ),
    _k(
        "教务",
        ["教务处", "考试中心"],
        ["关于{subject}期末考试安排的通知", "{subject}课程考试时间及考场安排"],
        [
            "{subject}期末考试定于{event}举行，考场设在{location}。请考生携带学生证和身份证提前十五分钟入场，"
            "缓考申请须在{deadline}前提交。",
            "经研究，{subject}课程考试安排在{event}，地点为{location}。"
            "考试期间严禁携带电子设备，需要缓考的同学请于{deadline}前办理手续。",
        ],
        room,
    ),
    _k(
        "教务",
        ["教务处", "考试中心", "{school}"],
        ["关于办理{term}学期成绩复核的通知", "{term}学期课程成绩复核办理办法"],
        [
            "对{term}学期课程成绩有疑问的同学，可以申请成绩复核。请于{deadline}前填写复核申请表并交至{location}，"
            "逾期不予受理。",
            "本学期课程成绩已在教务系统公布。如需复核，本人须在{deadline}前到{location}提交申请，"
            "复核结果将在两周内通知。",
        ],
        office,
    ),
    _k(
        "教务",
        ["教务处", "{school}"],
        ["关于{year}届本科毕业论文答辩的通知", "{school}毕业论文答辩安排"],
        [
            "{year}届本科毕业论文答辩将于{event}在{location}进行。请答辩学生于{deadline}前将论文定稿上传至"
            "毕业设计管理系统，并准备十分钟的汇报。",
            "根据学校毕业设计工作安排，{school}答辩会定于{event}举行，"
            "地点在{location}。论文查重报告须于{deadline}前提交指导教师审核。",
        ],
        room,
    ),
    _k(
        "教务",
        ["教务处", "本科生院"],
        ["关于{subject}课程调课的通知", "{subject}调整上课时间和教室"],
        [
            "因任课教师参加学术会议，{subject}课程调整至{event}上课，上课地点改为{location}，请选课学生相互转告。",
            "接任课教师通知，本周{subject}课程调课，补课时间为{event}，地点为{location}。",
        ],
        room,
        deadline=False,
    ),
    _k(
        "教务",
        ["教务处", "{school}"],
        ["关于申请辅修和双学位的通知", "{year}年辅修专业报名工作安排"],
        [
            "学有余力的本科生可申请修读辅修专业或双学位。请于{deadline}前在教务系统提交申请，"
            "纸质材料交至{location}。",
            "{year}年辅修和双学位报名现已开始，申请人平均学分绩点须达到3.0，"
            "报名截止时间为{deadline}，咨询地点为{location}。",
        ],
        office,
    ),
    # 科研
    _k(
        "科研",
        ["科学技术研究院", "科研处"],
        [
            "关于组织申报{year}年国家自然科学基金项目的通知",
            "{year}年国家自然科学基金项目申报工作安排",
        ],
        [
            "{year}年国家自然科学基金项目申报工作现已启动。请申请人于{deadline}前将申请书电子版提交至科研管理系统，"
            "纸质版签字盖章后交至{location}。",
            "为做好本年度国家自然科学基金申报，学校将组织专家预审。"
            "申请书须在{deadline}前完成校内提交，形式审查地点为{location}。",
        ],
        office,
    ),
    _k(
        "科研",
        ["科研处", "社会科学处"],
        ["关于开展{year}年度科研成果奖励申报的通知", "科研成果奖励材料报送安排"],
        [
            "为鼓励高水平研究，学校开展{year}年度科研成果奖励评审。请各单位汇总本单位论文、专利和获奖情况，"
            "于{deadline}前报送{location}。",
            "本年度科研成果奖励申报开始受理，申报材料须附检索证明，"
            "截止日期为{deadline}，材料报送至{location}。",
        ],
        office,
    ),
    _k(
        "科研",
        ["实验室与设备管理处", "科研处", "{school}"],
        ["关于开展实验室安全检查的通知", "实验室安全专项检查安排"],
        [
            "为加强实验室安全管理，学校将于{event}对{location}进行安全专项检查。各实验室须在{deadline}前完成自查，"
            "重点检查危险化学品和气瓶的存放。",
            "根据安全工作部署，检查组将于{event}抽查{location}等实验室。"
            "请实验室负责人于{deadline}前提交自查报告。",
        ],
        room,
    ),
    _k(
        "科研",
        ["科研处", "研究生院"],
        ["关于召开科研经费管理培训会的通知", "科研经费报销政策培训"],
        [
            "为帮助科研人员熟悉最新的经费管理办法，科研处定于{event}在{location}召开培训会。"
            "请各课题组派一名代表参加，并于{deadline}前报名。",
            "新版科研经费报销细则即将实施，"
            "培训会安排在{event}，地点为{location}，参会人员请于{deadline}前回复。",
        ],
        lambda r: r.choice(HALLS),
    ),
    _k(
        "科研",
        ["科学技术研究院", "{school}"],
        ["关于申报{year}年校级重点实验室开放课题的通知", "开放课题申报指南发布"],
        [
            "{year}年度重点实验室开放课题申报指南已发布，资助方向包括{topic}等。申请人请于{deadline}前提交申请书，"
            "受理地点为{location}。",
            "现面向校内外征集开放课题，研究方向涵盖{topic}。"
            "申请材料请在{deadline}前交到{location}。",
        ],
        office,
    ),
    _k(
        "科研",
        ["科研处", "学术委员会"],
        ["关于开展科研诚信专项自查的通知", "学术不端行为自查工作安排"],
        [
            "根据上级要求，学校开展科研诚信专项自查，重点核查论文署名、数据真实性和重复发表。"
            "各单位请于{deadline}前将自查报告报送{location}。",
            "为营造良好的学术风气，学术委员会组织开展科研诚信自查，"
            "自查材料截止日期为{deadline}，请交至{location}。",
        ],
        office,
    ),
    # 学生工作
    _k(
        "学生工作",
        ["学生工作部", "{school}"],
        ["关于开展{year}年度国家奖学金评审的通知", "{year}年度奖学金评选工作安排"],
        [
            "{year}年度国家奖学金评审工作现已开始。符合条件的同学请于{deadline}前提交申请表和成绩单，"
            "材料交至{location}。",
            "本年度奖学金评选按照个人申请、班级评议、学院审核的程序进行，"
            "申请截止时间为{deadline}，受理地点为{location}。",
        ],
        office,
    ),
    _k(
        "学生工作",
        ["学生资助管理中心", "学生工作部"],
        ["关于{year}年家庭经济困难学生认定的通知", "助学金申请及困难认定安排"],
        [
            "为做好学生资助工作，学校开展{year}年家庭经济困难学生认定。申请学生请于{deadline}前填写认定表，"
            "交至{location}。",
            "国家助学金申请现已开放，需提交家庭情况说明，截止日期为{deadline}，"
            "办理地点在{location}。",
        ],
        office,
    ),
    _k(
        "学生工作",
        ["心理健康教育中心", "学生工作部"],
        ["关于开展新生心理健康普查的通知", "心理健康月系列活动安排"],
        [
            "为了解新生心理状况，中心将于{event}在{location}组织心理健康普查。请各班级辅导员提前通知学生，"
            "因故不能参加的同学须在{deadline}前预约补测。",
            "心理健康月期间将开展团体辅导、心理健康讲座和个体咨询，"
            "首场团体辅导安排在{event}，地点为{location}，报名截止时间为{deadline}。",
        ],
        lambda r: r.choice(HALLS),
    ),
    _k(
        "学生工作",
        ["校团委", "学生工作部"],
        ["关于举办学生干部培训班的通知", "{year}年学生干部能力提升培训"],
        [
            "为提升学生干部的组织协调能力，校团委将于{event}在{location}举办学生干部培训班。"
            "请各学院于{deadline}前报送参训名单。",
            "学生干部培训班定于{event}开班，地点设在{location}，"
            "各学院推荐名单请在{deadline}前提交。",
        ],
        lambda r: r.choice(HALLS),
    ),
    _k(
        "学生工作",
        ["武装部", "学生工作部"],
        ["关于{year}级新生军训安排的通知", "{year}级新生军事技能训练安排"],
        [
            "{year}级新生军训将于{event}开始，集合地点为{location}。请新生按要求领取军训服装，"
            "因身体原因申请免训的同学须于{deadline}前提交医院证明。",
            "根据学校安排，新生军训动员大会于{event}在{location}召开，"
            "免训和缓训申请截止时间为{deadline}。",
        ],
        lambda r: r.choice(("田径场", "体育馆", "东操场")),
    ),
    _k(
        "学生工作",
        ["学生工作部", "{school}"],
        ["关于评选优秀学生干部和三好学生的通知", "{year}年度评优评先工作安排"],
        [
            "{year}年度评优评先工作现已启动，评选项目包括三好学生、优秀学生干部和先进班集体。"
            "请各班级于{deadline}前将推荐材料交至{location}。",
            "学校开展年度评优评先，候选人须成绩优良、表现突出，"
            "推荐材料截止日期为{deadline}，报送地点为{location}。",
        ],
        office,
    ),
    # 招生就业
    _k(
        "招生就业",
        ["就业指导中心", "{school}"],
        ["关于举办{year}届毕业生春季校园招聘会的通知", "{year}届毕业生双选会安排"],
        [
            "{year}届毕业生春季校园招聘会定于{event}在{location}举行，{company}等百余家单位将到场招聘。"
            "参会单位请于{deadline}前完成网上报名。",
            "为促进毕业生就业，学校举办大型双选会，时间为{event}，地点在{location}。"
            "毕业生请携带简历参加，用人单位报名截止时间为{deadline}。",
        ],
        lambda r: r.choice(("体育馆", "学生活动中心", "国际会议中心")),
    ),
    _k(
        "招生就业",
        ["就业指导中心", "{school}"],
        ["{company}专场宣讲会", "关于{company}来校宣讲招聘的通知"],
        [
            "{company}将于{event}在{location}举办专场宣讲会，招聘岗位包括研发、产品和市场。"
            "有意向的同学请于{deadline}前投递简历。",
            "知名企业{company}来校招聘，宣讲会安排在{event}，"
            "地点为{location}，网申截止时间为{deadline}。",
        ],
        room,
    ),
    _k(
        "招生就业",
        ["研究生院", "研究生招生办公室"],
        ["关于{year}年推荐优秀应届本科毕业生免试攻读研究生的通知", "{year}年推免生遴选工作安排"],
        [
            "{year}年推荐免试研究生工作现已开始。符合条件的同学请于{deadline}前在系统中提交申请，"
            "综合面试在{location}进行。",
            "推免资格审核和面试将按学院统一安排，申请材料截止时间为{deadline}，"
            "面试地点为{location}。",
        ],
        room,
    ),
    _k(
        "招生就业",
        ["招生办公室", "校团委"],
        ["关于招募{year}年招生宣传志愿者的通知", "招生宣传志愿者报名"],
        [
            "为做好{year}年本科招生宣传，招生办公室面向在校生招募志愿者，寒假期间回母校宣讲。"
            "报名截止时间为{deadline}，培训会在{location}举行。",
            "招生办招募生源地宣传志愿者，请有意者于{deadline}前报名，岗前培训地点为{location}。",
        ],
        lambda r: r.choice(HALLS),
    ),
    _k(
        "招生就业",
        ["就业指导中心", "学生工作部"],
        ["关于办理{year}届毕业生就业协议签约的通知", "就业协议书领取和鉴证安排"],
        [
            "已落实工作单位的{year}届毕业生，请于{deadline}前到{location}办理就业协议鉴证手续，"
            "并在就业系统中登记去向。",
            "毕业生就业协议书现可领取，签约后须在{deadline}前交至{location}登记备案。",
        ],
        office,
    ),
    _k(
        "招生就业",
        ["就业指导中心", "{school}"],
        ["关于举办就业指导讲座的通知", "求职简历写作与面试技巧讲座"],
        [
            "为帮助毕业生提升求职能力，就业指导中心邀请{company}人力资源总监于{event}在{location}开展就业指导讲座，"
            "主题为简历写作与面试技巧。",
            "就业指导系列讲座第三讲将于{event}举行，地点为{location}，内容涉及职业规划和求职面试。",
        ],
        lambda r: r.choice(HALLS),
        deadline=False,
    ),
    # 后勤
    _k(
        "后勤",
        ["后勤保障部", "水电管理中心"],
        ["关于{location}临时停水的通知", "停水检修通知"],
        [
            "因供水管网检修，{location}将于{event}起临时停水，预计持续六小时，请同学们提前储水。",
            "接供水单位通知，{location}供水管道需要维修，停水时间为{event}开始，恢复供水时间另行通知。",
        ],
        lambda r: r.choice(DORMS),
        deadline=False,
    ),
    _k(
        "后勤",
        ["后勤保障部", "水电管理中心"],
        ["关于{location}计划停电的通知", "配电设备检修停电安排"],
        [
            "为保障用电安全，{location}配电设备将于{event}进行检修并停电，请提前做好电脑和实验数据的保存。",
            "因变压器例行检修，{location}将于{event}停电，请相关人员提前关闭用电设备。",
        ],
        lambda r: r.choice(DORMS + BUILDINGS),
        deadline=False,
    ),
    _k(
        "后勤",
        ["饮食服务中心", "后勤保障部"],
        ["关于{location}装修期间调整供餐的通知", "食堂暂停营业及就餐安排"],
        [
            "{location}将进行内部装修，暂停营业至{deadline}，其间请师生到其他食堂就餐。",
            "为改善就餐环境，{location}自即日起暂停营业，预计{deadline}恢复供餐。",
        ],
        lambda r: r.choice(CANTEENS),
    ),
    _k(
        "后勤",
        ["宿舍管理中心", "后勤保障部"],
        ["关于寒假留校住宿申请的通知", "假期留校学生住宿登记"],
        [
            "寒假期间需要留校住宿的同学，请于{deadline}前在后勤服务平台提交申请，留校学生统一安排在{location}。",
            "假期宿舍集中管理，留校申请截止时间为{deadline}，获批同学须搬入{location}。",
        ],
        lambda r: r.choice(DORMS),
    ),
    _k(
        "后勤",
        ["信息化中心", "后勤保障部"],
        ["关于校园卡系统升级的通知", "校园卡暂停使用及补办安排"],
        [
            "校园卡系统将于{event}进行升级，期间消费和门禁暂停使用。卡片损坏的同学请于{deadline}前到{location}补办。",
            "为提升服务质量，校园卡平台升级维护，时间为{event}。需要换卡的同学请在{deadline}前到{location}办理。",
        ],
        lambda r: r.choice(("综合服务大厅", "校园卡服务中心", "图书馆一楼服务台")),
    ),
    _k(
        "后勤",
        ["后勤保障部", "宿舍管理中心"],
        ["关于学生宿舍空调维修报修的通知", "宿舍设施集中维修安排"],
        [
            "为做好夏季降温工作，后勤将于{event}起对{location}空调进行集中检修，有故障的宿舍请于{deadline}前在报修平台登记。",
            "宿舍设施集中维修即将开始，范围为{location}，报修登记截止时间为{deadline}。",
        ],
        lambda r: r.choice(DORMS),
    ),
    # 讲座活动
    _k(
        "讲座活动",
        ["{school}", "科研处", "研究生院"],
        ["学术讲座：{topic}", "关于举办“{topic}”学术报告的通知"],
        [
            "应{school}邀请，{speaker}将于{event}在{location}作题为“{topic}”的学术报告，欢迎师生参加。",
            "本期名家讲坛邀请{speaker}主讲“{topic}”，时间为{event}，地点为{location}。",
        ],
        lambda r: r.choice(HALLS),
        deadline=False,
    ),
    _k(
        "讲座活动",
        ["校团委", "学生会"],
        ["关于举办{year}年校园歌手大赛的通知", "校园歌手大赛报名启动"],
        [
            "{year}年校园歌手大赛现已启动，初赛将于{event}在{location}举行。报名截止时间为{deadline}，欢迎同学们踊跃参与。",
            "一年一度的校园歌手大赛开始报名，请于{deadline}前提交报名表，决赛地点为{location}。",
        ],
        lambda r: r.choice(("大礼堂", "学生活动中心多功能厅")),
    ),
    _k(
        "讲座活动",
        ["体育部", "校团委"],
        ["关于举办{year}年秋季运动会的通知", "{year}年田径运动会报名安排"],
        [
            "{year}年秋季田径运动会将于{event}在{location}开幕。请各学院于{deadline}前报送运动员名单。",
            "学校定于{event}举办田径运动会，比赛地点为{location}，各单位报名截止时间为{deadline}。",
        ],
        lambda r: r.choice(("田径场", "东操场")),
    ),
    _k(
        "讲座活动",
        ["图书馆", "校团委"],
        ["关于举办读书分享会的通知", "“书香校园”读书月活动安排"],
        [
            "“书香校园”读书月期间，图书馆将于{event}在{location}举办读书分享会，主题为{topic}。请于{deadline}前在线报名。",
            "读书分享会第五期将在{location}举行，时间为{event}，名额有限，报名截至{deadline}。",
        ],
        lambda r: r.choice(("图书馆一楼报告厅", "图书馆三楼学术报告厅", "图书馆二楼阅读空间")),
    ),
    _k(
        "讲座活动",
        ["{school}", "校团委"],
        ["关于举办大学生创新创业大赛的通知", "{year}年创新创业大赛校内选拔"],
        [
            "{year}年大学生创新创业大赛校内选拔赛开始报名。参赛团队请于{deadline}前提交项目计划书，"
            "路演答辩在{location}进行。",
            "为培养学生创新精神，学校举办创新创业大赛，项目申报截止时间为{deadline}，"
            "决赛路演地点为{location}。",
        ],
        lambda r: r.choice(HALLS),
    ),
    _k(
        "讲座活动",
        ["{school}", "学生会"],
        ["关于举办{school}迎新晚会的通知", "迎新文艺晚会节目征集"],
        [
            "{school}迎新晚会将于{event}在{location}举行。现面向全院征集节目，请于{deadline}前报送节目单。",
            "为欢迎新同学，{school}举办迎新文艺晚会，地点为{location}，节目报名截止时间为{deadline}。",
        ],
        lambda r: r.choice(("大礼堂", "学生活动中心多功能厅", "逸夫楼报告厅")),
    ),
)

OPENINGS = ("", "各位同学：", "各单位、全体师生：", "各学院：", "全校师生：")
CLOSINGS = ("", "特此通知。", "请相互转告。", "联系方式请见学院网站。", "具体要求见附件。")


def _facts(rng: random.Random) -> Facts:
    publish = dt.date(2025, 9, 1) + dt.timedelta(days=rng.randint(0, 300))
    event_day = publish + dt.timedelta(days=rng.randint(3, 25))
    deadline = publish + dt.timedelta(days=rng.randint(5, 30))
    return Facts(
        rng=rng,
        publish=publish,
        deadline=cn_date(deadline),
        event=event_time(event_day, rng),
        location="",
        school=rng.choice(SCHOOLS),
        subject=rng.choice(SUBJECTS),
        speaker=rng.choice(SPEAKERS),
        topic=rng.choice(TOPICS),
        company=rng.choice(COMPANIES),
        year=publish.year + (1 if publish.month >= 9 else 0),
        term=rng.choice(("春季", "秋季", "夏季")),
    )


def make_notice(index: int, kind: Kind, rng: random.Random) -> dict:
    """One notice of `kind`, every slot drawn from `rng`."""
    f = _facts(rng)
    f.location = kind.place(rng)
    slots = {k: v for k, v in vars(f).items() if k not in ("rng", "publish")}
    title = rng.choice(kind.titles).format(**slots)
    body = rng.choice(kind.bodies).format(**slots)
    body = f"{rng.choice(OPENINGS)}{body}{rng.choice(CLOSINGS)}"
    return {
        "id": f"notice-{index:04d}",
        "category": kind.category,
        "title": title,
        "department": rng.choice(kind.departments).format(**slots),
        "publish_date": f.publish.isoformat(),
        "body": body,
        "deadline": f.deadline if kind.has_deadline else None,
        "location": f.location if kind.has_location else None,
        "source": "sample",
    }


def generate(n: int = 360, seed: int = 20260301) -> list[dict]:
    """`n` notices, cycling categories evenly; the same (n, seed) always gives the same list."""
    rng = random.Random(seed)
    by_category = {c: [k for k in KINDS if k.category == c] for c in CATEGORIES}
    notices = []
    for i in range(n):
        category = CATEGORIES[i % len(CATEGORIES)]
        notices.append(make_notice(i + 1, rng.choice(by_category[category]), rng))
    return notices


# --- a small classification dataset, as a user would add one with `llmops data add` -----------
HELPDESK_INSTRUCTION = (
    "请判断下面这条学生咨询应转给哪个部门处理，只回答部门名称"
    "（教务处、学生处、后勤服务中心、图书馆、信息化中心）。"
)
# office -> what students ask it; several share words (系统, 申请, 宿舍, 卡, 网) with another
# office's questions, so a bag of characters alone does not settle every case
HELPDESK = {
    "教务处": (
        "选课系统显示{course}已满，还能补选吗",
        "{course}的期末考试和另一门冲突了，怎么申请缓考",
        "我想申请{course}的成绩复核，要找谁",
        "转专业申请的材料交到哪里",
        "重修{course}要怎么报名",
        "学籍信息里的出生日期错了怎么改",
        "辅修学位的课表在哪里能查到",
        "交换期间修的学分怎么认定",
        "补考名单什么时候公布",
        "选课系统登录后看不到{course}",
    ),
    "学生处": (
        "国家助学金的申请表交给谁",
        "家庭经济困难认定需要什么证明",
        "勤工助学岗位怎么报名",
        "奖学金评定结果在哪里公示",
        "学生证丢了怎么补办",
        "生源地助学贷款的回执交到哪里",
        "想预约心理咨询，流程是什么",
        "对违纪处分有异议，怎么申请复查",
        "宿舍里同学之间闹矛盾，可以找谁调解",
        "申请临时困难补助需要哪些材料",
    ),
    "后勤服务中心": (
        "{dorm}的热水一直不热",
        "{dorm}的空调坏了，怎么报修",
        "{dorm}门锁坏了，能派人来修吗",
        "食堂的饭卡消费记录不对",
        "想申请调换宿舍，要去哪里办",
        "{dorm}明天停水吗",
        "宿舍楼的饮水机没水了",
        "快递点的营业时间是几点",
        "{dorm}卫生间漏水",
        "宿舍的灯管坏了，找谁换",
    ),
    "图书馆": (
        "借的《{book}》快到期了，怎么续借",
        "还书逾期了，罚款怎么交",
        "自习座位预约系统约不上",
        "想借用研讨室开组会",
        "在校外怎么访问图书馆的数据库",
        "馆里没有《{book}》，能馆际互借吗",
        "借书证和校园卡绑定失败",
        "图书馆周末开到几点",
        "《{book}》在哪一层的书架",
        "毕业前要还清所有借书吗",
    ),
    "信息化中心": (
        "{dorm}的校园网连不上",
        "统一身份认证的密码忘了",
        "学校邮箱收不到邮件",
        "在校外怎么连学校的VPN",
        "图书馆里的Wi-Fi总是掉线",
        "正版软件在哪里下载",
        "校园卡充值的网页打不开",
        "选课那天网络特别卡，是服务器的问题吗",
        "宿舍网费怎么交",
        "实验室的电脑中了病毒",
    ),
}
HELPDESK_SLOTS = {
    "course": (
        "高等数学",
        "大学物理",
        "线性代数",
        "大学英语",
        "数据结构",
        "概率论",
        "有机化学",
        "宏观经济学",
    ),
    "dorm": ("东区3号楼", "西区7号楼", "南苑5栋", "北苑12栋", "研究生公寓2号楼", "紫荆8号楼"),
    "book": (
        "百年孤独",
        "算法导论",
        "乡土中国",
        "活着",
        "经济学原理",
        "红楼梦",
        "概率论与数理统计",
    ),
}
HELPDESK_OPENERS = ("老师您好，", "你好，", "请问", "您好，想问一下：", "", "同学问：")
HELPDESK_CLOSERS = ("？", "，谢谢！", "。", "？麻烦告诉我。", "，急！")


def helpdesk(n: int = 200, seed: int = 20261128) -> list[dict]:
    """`n` student questions (alpaca records) labelled with the office that answers them,
    cycling offices evenly; every question is distinct and the same (n, seed) gives the same
    list."""
    rng = random.Random(seed)
    offices = sorted(HELPDESK)
    seen: set[str] = set()
    records: list[dict] = []
    while len(records) < n:
        office = offices[len(records) % len(offices)]
        question = rng.choice(HELPDESK[office]).format(
            **{k: rng.choice(v) for k, v in HELPDESK_SLOTS.items()}
        )
        text = f"{rng.choice(HELPDESK_OPENERS)}{question}{rng.choice(HELPDESK_CLOSERS)}"
        if text in seen:
            continue
        seen.add(text)
        records.append(
            {
                "instruction": HELPDESK_INSTRUCTION,
                "input": text,
                "output": office,
                "category": office,  # the evaluation slices split by it
                "id": f"helpdesk-{len(records) + 1:04d}",
            }
        )
    return records


@command("data", "sample", help="regenerate the shipped sample notices")
def main() -> int:
    from pipeline.config import TASKS
    from pipeline.data.add import to_instruction_row
    from pipeline.data.prefs import sample_pairs

    notices = generate()
    write_jsonl(RAW_NOTICES, notices)
    pairs = sample_pairs(notices, list(TASKS))
    write_jsonl(PREFS_FILE, pairs)
    questions = [to_instruction_row(r, "alpaca", "helpdesk", None) for r in helpdesk()]
    write_jsonl(RAW_HELPDESK, questions)
    print(
        f"wrote {len(notices)} notices over {len(CATEGORIES)} categories to {RAW_NOTICES},"
        f" {len(pairs)} preference pairs to {PREFS_FILE} and {len(questions)} labelled student"
        f" questions (a classification dataset, source `helpdesk`) to {RAW_HELPDESK}"
    )
    return 0


if __name__ == "__main__":
    run_stage(main)
